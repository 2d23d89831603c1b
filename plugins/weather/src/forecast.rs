//! The `get_weather` tool: its arguments and report (the schemas derive from them),
//! the upstream request, and the mapping of every upstream answer to a report or a
//! readable error.

use mcp_wasm_sdk::http::{self, HttpError};
use mcp_wasm_sdk::{Error, JsonSchema, Structured, credentials};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

pub const TOOL_NAME: &str = "get_weather";
pub const CREDENTIAL: &str = "weather-api-key";
pub const DEFAULT_API_BASE: &str = "https://api.openweathermap.org";

/// Upstream bodies larger than this are refused: a current-weather answer is ~1 KiB.
const MAX_UPSTREAM_BODY: usize = 256 * 1024;

/// The arguments of `get_weather`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arguments {
    /// City name, e.g. "London" or "St. John's"
    // Letters (any script, with their combining marks), spaces, hyphens, apostrophes
    // and periods, starting with a letter.
    #[schemars(length(min = 1, max = 100), pattern(r"^[\p{L}][\p{L}\p{M} .'-]*$"))]
    city: String,
    /// metric: Celsius and m/s; imperial: Fahrenheit and mph
    #[serde(default)]
    units: Units,
}

/// Characters left as they are in a query value (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The validated arguments of one call.
pub struct WeatherRequest {
    pub city: String,
    pub units: Units,
}

#[derive(Clone, Copy, Deserialize, Serialize, JsonSchema, Default, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Units {
    #[default]
    Metric,
    Imperial,
}

impl Units {
    fn as_str(self) -> &'static str {
        match self {
            Units::Metric => "metric",
            Units::Imperial => "imperial",
        }
    }
    fn temperature_unit(self) -> &'static str {
        match self {
            Units::Metric => "°C",
            Units::Imperial => "°F",
        }
    }
    fn speed_unit(self) -> &'static str {
        match self {
            Units::Metric => "m/s",
            Units::Imperial => "mph",
        }
    }
}

impl WeatherRequest {
    /// Re-checks the arguments. The host has already validated them against the
    /// schema; the plugin checks again because it may run under other hosts.
    pub fn parse(args: Arguments) -> Result<Self, Error> {
        let city = args.city.trim();
        let length = city.chars().count();
        if !(1..=100).contains(&length) {
            return Err(Error::InvalidArguments(format!(
                "city: must be 1-100 characters, got {length}"
            )));
        }
        let mut chars = city.chars();
        let starts_with_letter = chars.next().is_some_and(char::is_alphabetic);
        if !starts_with_letter || !city.chars().all(is_city_char) {
            return Err(Error::InvalidArguments(
                "city: only letters, spaces, hyphens, apostrophes and periods are allowed, \
                 starting with a letter"
                    .into(),
            ));
        }
        Ok(Self {
            city: city.to_owned(),
            units: args.units,
        })
    }

    fn url(&self, base: &str, api_key: &str) -> String {
        format!(
            "{}/data/2.5/weather?q={}&units={}&appid={}",
            base.trim_end_matches('/'),
            utf8_percent_encode(&self.city, QUERY_VALUE),
            self.units.as_str(),
            utf8_percent_encode(api_key, QUERY_VALUE),
        )
    }
}

fn is_city_char(c: char) -> bool {
    // Combining marks (e.g. a decomposed "é") are not `alphabetic`; accept the common
    // combining diacritical block alongside letters.
    c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.' | '\u{0300}'..='\u{036F}')
}

/// The tool: the arguments re-checked, the key read, the upstream asked, its answer
/// mapped. A city the service does not know is a result the model reads.
pub fn get_weather(args: Arguments) -> Result<Structured<Report>, Error> {
    let request = WeatherRequest::parse(args)?;
    let api_key = credentials::get(CREDENTIAL)?;
    let base = std::env::var("WEATHER_API_BASE").unwrap_or_else(|_| DEFAULT_API_BASE.to_owned());
    let report = fetch(&base, &request, &api_key)?;
    Ok(Structured {
        text: report.summary(),
        value: report,
    })
}

/// The current weather, as the tool returns it.
#[derive(Serialize, JsonSchema)]
pub struct Report {
    city: String,
    temperature: f64,
    units: Units,
    description: String,
    humidity: f64,
    wind_speed: f64,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{}: {:.1}{}, {}, humidity {}%, wind {:.1} {}",
            self.city,
            self.temperature,
            self.units.temperature_unit(),
            self.description,
            self.humidity,
            self.wind_speed,
            self.units.speed_unit(),
        )
    }
}

/// The parts of an OpenWeatherMap current-weather answer that we use.
#[derive(Deserialize)]
struct Current {
    name: String,
    main: Main,
    weather: Vec<Condition>,
    wind: Wind,
}
#[derive(Deserialize)]
struct Main {
    temp: f64,
    humidity: f64,
}
#[derive(Deserialize)]
struct Condition {
    description: String,
}
#[derive(Deserialize)]
struct Wind {
    speed: f64,
}

/// Asks the upstream and maps its answer. Never panics: every failure is an `Error`,
/// and none includes the URL (it carries the key).
fn fetch(base: &str, request: &WeatherRequest, api_key: &str) -> Result<Report, Error> {
    let url = request.url(base, api_key);
    let response = http::get(&url, &[("accept", "application/json")], MAX_UPSTREAM_BODY).map_err(
        |e| match e {
            HttpError::Unreachable => Error::Upstream(
                "could not reach the weather service (request refused or failed)".into(),
            ),
            HttpError::TooLarge(_) => {
                Error::Upstream("the weather service sent an oversized answer".into())
            }
            HttpError::CutShort => {
                Error::Upstream("the weather service answer was cut short".into())
            }
            HttpError::Build(why) => Error::Internal(format!("building the request: {why}")),
        },
    )?;
    match response.status {
        200 => parse_report(&response.body, request.units),
        404 => Err(Error::Tool(format!(
            "No weather found for city \"{}\"; check the spelling.",
            request.city
        ))),
        401 | 403 => Err(Error::Upstream(format!(
            "the weather service rejected the API key (HTTP {}); the operator should check \
             the `{CREDENTIAL}` credential",
            response.status
        ))),
        429 => Err(Error::Upstream(
            "the weather service is rate limiting us (HTTP 429); try again later".into(),
        )),
        s @ 500..=599 => Err(Error::Upstream(format!(
            "the weather service is unavailable (HTTP {s}); try again later"
        ))),
        s => Err(Error::Upstream(format!(
            "the weather service answered HTTP {s}"
        ))),
    }
}

fn parse_report(bytes: &[u8], units: Units) -> Result<Report, Error> {
    let current: Current = serde_json::from_slice(bytes).map_err(|e| {
        Error::Upstream(format!(
            "the weather service sent an answer we could not read: {e}"
        ))
    })?;
    let description = current
        .weather
        .into_iter()
        .next()
        .map(|c| c.description)
        .unwrap_or_else(|| "no description".to_owned());
    Ok(Report {
        city: current.name,
        temperature: current.main.temp,
        units,
        description,
        humidity: current.main.humidity,
        wind_speed: current.wind.speed,
    })
}

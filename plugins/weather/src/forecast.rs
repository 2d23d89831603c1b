//! The `get_weather` tool: its schemas, argument parsing, the upstream request and the
//! mapping of every upstream answer to a report or a readable error.

use crate::mcp::tools::types::CallError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use wstd::http::{Body, Client, Request, StatusCode};

pub const TOOL_NAME: &str = "get_weather";
pub const CREDENTIAL: &str = "weather-api-key";
pub const DEFAULT_API_BASE: &str = "https://api.openweathermap.org";

/// Upstream bodies larger than this are refused: a current-weather answer is ~1 KiB.
const MAX_UPSTREAM_BODY: usize = 256 * 1024;

/// Letters (any script, with their combining marks), spaces, hyphens, apostrophes and
/// periods; it must start with a letter. Length is bounded separately (1-100).
pub const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "city": {
      "type": "string",
      "description": "City name, e.g. \"London\" or \"St. John's\"",
      "minLength": 1,
      "maxLength": 100,
      "pattern": "^[\\p{L}][\\p{L}\\p{M} .'-]*$"
    },
    "units": {
      "type": "string",
      "enum": ["metric", "imperial"],
      "default": "metric",
      "description": "metric: Celsius and m/s; imperial: Fahrenheit and mph"
    }
  },
  "required": ["city"],
  "additionalProperties": false
}"#;

pub const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "city": { "type": "string" },
    "temperature": { "type": "number" },
    "units": { "type": "string", "enum": ["metric", "imperial"] },
    "description": { "type": "string" },
    "humidity": { "type": "number" },
    "wind_speed": { "type": "number" }
  },
  "required": ["city", "temperature", "units", "description", "humidity", "wind_speed"]
}"#;

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

#[derive(Clone, Copy, Deserialize, Default, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    city: String,
    #[serde(default)]
    units: Units,
}

impl WeatherRequest {
    /// Parses and re-checks the arguments. The host has already validated them against
    /// `INPUT_SCHEMA`; the plugin checks again because it may run under other hosts.
    pub fn parse(arguments: &str) -> Result<Self, CallError> {
        let args: Arguments = serde_json::from_str(arguments)
            .map_err(|e| CallError::InvalidArguments(format!("arguments: {e}")))?;
        let city = args.city.trim();
        let length = city.chars().count();
        if !(1..=100).contains(&length) {
            return Err(CallError::InvalidArguments(format!(
                "city: must be 1-100 characters, got {length}"
            )));
        }
        let mut chars = city.chars();
        let starts_with_letter = chars.next().is_some_and(char::is_alphabetic);
        if !starts_with_letter || !city.chars().all(is_city_char) {
            return Err(CallError::InvalidArguments(
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

/// What the upstream said, once understood.
pub enum Outcome {
    Report(Report),
    CityNotFound,
}

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

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "city": self.city,
            "temperature": self.temperature,
            "units": self.units.as_str(),
            "description": self.description,
            "humidity": self.humidity,
            "wind_speed": self.wind_speed,
        })
        .to_string()
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

/// Asks the upstream and maps its answer. Never panics: every failure is a `CallError`.
pub async fn fetch(
    base: &str,
    request: &WeatherRequest,
    api_key: &str,
) -> Result<Outcome, CallError> {
    let http_request = Request::get(request.url(base, api_key))
        .header("accept", "application/json")
        .body(Body::empty())
        .map_err(|e| CallError::Internal(format!("building the request: {e}")))?;
    // The client's error may echo the URL, which carries the key: never include it.
    let response = Client::new().send(http_request).await.map_err(|_| {
        CallError::Upstream(
            "could not reach the weather service (request refused or failed)".into(),
        )
    })?;
    let status = response.status();
    let mut body = response.into_body();
    if body
        .content_length()
        .is_some_and(|n| n > MAX_UPSTREAM_BODY as u64)
    {
        return Err(CallError::Upstream(
            "the weather service sent an oversized answer".into(),
        ));
    }
    let bytes = body
        .contents()
        .await
        .map_err(|_| CallError::Upstream("the weather service answer was cut short".into()))?;
    if bytes.len() > MAX_UPSTREAM_BODY {
        return Err(CallError::Upstream(
            "the weather service sent an oversized answer".into(),
        ));
    }
    match status {
        StatusCode::OK => parse_report(bytes, request.units).map(Outcome::Report),
        StatusCode::NOT_FOUND => Ok(Outcome::CityNotFound),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(CallError::Upstream(format!(
            "the weather service rejected the API key (HTTP {}); the operator should check \
             the `{CREDENTIAL}` credential",
            status.as_u16()
        ))),
        StatusCode::TOO_MANY_REQUESTS => Err(CallError::Upstream(
            "the weather service is rate limiting us (HTTP 429); try again later".into(),
        )),
        s if s.is_server_error() => Err(CallError::Upstream(format!(
            "the weather service is unavailable (HTTP {}); try again later",
            s.as_u16()
        ))),
        s => Err(CallError::Upstream(format!(
            "the weather service answered HTTP {}",
            s.as_u16()
        ))),
    }
}

fn parse_report(bytes: &[u8], units: Units) -> Result<Report, CallError> {
    let current: Current = serde_json::from_slice(bytes).map_err(|e| {
        CallError::Upstream(format!(
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

//! The reference plugin: `get_weather` asks an OpenWeatherMap-compatible API for the
//! current weather in a city.
//!
//! It shows every part of the plugin contract: a strict input schema, an output schema
//! with structured content, a credential read through the `credentials` import, outgoing
//! HTTP through `wasi:http` (via `wstd`), configuration through the environment the
//! operator grants (`WEATHER_API_BASE`), and upstream failures turned into readable
//! errors instead of traps.

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

mod forecast;

use exports::mcp::tools::tools::Guest;
use mcp::tools::credentials::Error as CredentialError;
use mcp::tools::types::{CallError, CallResult, Content, Tool};

struct Weather;

impl Guest for Weather {
    fn list_tools() -> Vec<Tool> {
        vec![Tool {
            name: forecast::TOOL_NAME.into(),
            title: Some("Current weather".into()),
            description: "Current weather for a city: temperature, conditions, humidity \
                          and wind. Units are metric (Celsius, m/s) unless imperial is \
                          asked for (Fahrenheit, mph)."
                .into(),
            input_schema: forecast::INPUT_SCHEMA.into(),
            output_schema: Some(forecast::OUTPUT_SCHEMA.into()),
        }]
    }

    fn call_tool(name: String, arguments: String) -> Result<CallResult, CallError> {
        if name != forecast::TOOL_NAME {
            return Err(CallError::UnknownTool(name));
        }
        let request = forecast::WeatherRequest::parse(&arguments)?;
        let api_key = mcp::tools::credentials::get(forecast::CREDENTIAL).map_err(|e| {
            let why = match e {
                CredentialError::NotGranted => "is not granted to this plugin",
                CredentialError::NotFound => "has no value on the host",
                CredentialError::Unavailable => "could not be read by the host",
            };
            CallError::Internal(format!(
                "the credential `{}` {why}; the operator must configure it",
                forecast::CREDENTIAL
            ))
        })?;
        let base = std::env::var("WEATHER_API_BASE")
            .unwrap_or_else(|_| forecast::DEFAULT_API_BASE.to_owned());
        let outcome = wstd::runtime::block_on(forecast::fetch(&base, &request, &api_key))?;
        Ok(match outcome {
            forecast::Outcome::Report(report) => CallResult {
                content: vec![Content::Text(report.summary())],
                structured: Some(report.to_json()),
                is_error: false,
            },
            forecast::Outcome::CityNotFound => CallResult {
                content: vec![Content::Text(format!(
                    "No weather found for city \"{}\"; check the spelling.",
                    request.city
                ))],
                structured: None,
                is_error: true,
            },
        })
    }
}

export!(Weather);

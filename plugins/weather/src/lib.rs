//! The reference plugin: `get_weather` asks an OpenWeatherMap-compatible API for the
//! current weather in a city.
//!
//! It shows every part of the plugin contract through the SDK: an input schema derived
//! from a typed argument struct (with length and pattern constraints), an output schema
//! with structured content, a credential read through the `credentials` import,
//! outgoing HTTP through `wasi:http`, configuration through the environment the
//! operator grants (`WEATHER_API_BASE`), and upstream failures turned into readable
//! errors instead of traps.

mod forecast;

use mcp_wasm_sdk::{Annotations, Plugin, Tool};

struct Weather;

impl Plugin for Weather {
    fn tools() -> Vec<Tool> {
        vec![
            Tool::structured(
                forecast::TOOL_NAME,
                "Current weather for a city: temperature, conditions, humidity and wind. \
                 Units are metric (Celsius, m/s) unless imperial is asked for (Fahrenheit, \
                 mph).",
                forecast::get_weather,
            )
            .title("Current weather")
            .annotations(Annotations {
                read_only: Some(true),
                open_world: Some(true),
                ..Annotations::none()
            }),
        ]
    }
}

mcp_wasm_sdk::export!(Weather);

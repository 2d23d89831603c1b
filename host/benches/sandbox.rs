//! `cargo bench --bench sandbox`: the per-call cost of the sandbox and of argument
//! validation, measured on the real plugins.
//!
//! - `instance+call/echo`: a fresh Store and instance from the plugin's InstancePre,
//!   then `call-tool` of the trivial echo tool (target: <= 25 us median).
//! - `validate/*`: the weather tool's input schema against good and bad arguments.

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_wasm_host::domain::PluginName;
use mcp_wasm_host::sandbox::Sandbox;
use mcp_wasm_host::sandbox::env::PluginEnv;
use mcp_wasm_host::sandbox::pool::PoolSize;
use mcp_wasm_host::sandbox::state::Grants;
use mcp_wasm_host::schema::CompiledSchema;
use mcp_wasm_host::secrets::sources::EnvSource;
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

fn grants(name: &str) -> Arc<Grants> {
    Arc::new(Grants {
        env: PluginEnv::from_pairs([("WEATHER_API_BASE", "http://127.0.0.1:9")]).unwrap(),
        ..Grants::none(PluginName::try_from(name.to_owned()).unwrap())
    })
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new(Arc::new(EnvSource), PoolSize::default()).unwrap();
    let prepare = |name: &str| {
        let bytes = std::fs::read(test_artifacts::plugin(name)).unwrap();
        let component = runtime.block_on(sandbox.compile(bytes)).unwrap();
        sandbox.prepare(&component, grants(name)).unwrap()
    };
    let echo = prepare("echo");
    let arguments = json!({"message": "hello"}).to_string();
    let answer = runtime
        .block_on(sandbox.call_tool(&echo, "echo", &arguments))
        .outcome
        .unwrap()
        .unwrap();
    assert!(!answer.is_error);
    c.bench_function("instance+call/echo", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                sandbox
                    .call_tool(&echo, "echo", &arguments)
                    .await
                    .outcome
                    .unwrap(),
            )
        })
    });

    let weather = prepare("weather");
    let tools = runtime.block_on(sandbox.list_tools(&weather)).unwrap();
    let schema = CompiledSchema::compile_object_schema(&tools[0].input_schema).unwrap();
    let good = json!({"city": "São Paulo", "units": "metric"});
    let bad = json!({"city": "'; DROP TABLE users; --", "units": "kelvin", "x": 1});
    assert!(schema.check(&good).is_ok() && schema.check(&bad).is_err());
    c.bench_function("validate/weather-good", |b| {
        b.iter(|| black_box(schema.check(black_box(&good))))
    });
    c.bench_function("validate/weather-bad", |b| {
        b.iter(|| black_box(schema.check(black_box(&bad))))
    });
}

criterion_group!(sandbox, benches);
criterion_main!(sandbox);

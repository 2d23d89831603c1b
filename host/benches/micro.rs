//! `cargo bench --bench micro` (run by `scripts/bench.sh`): what each step of a tool
//! call costs on its own, on the real plugins and the host's own types.
//!
//! - `instance+call/echo`: a fresh Store and instance from the plugin's InstancePre,
//!   then `call-tool` of the trivial echo tool, and the slot's release (target: <= 15 us
//!   median).
//! - `validate/*`: the weather tool's input schema against good and bad arguments.
//! - `jwt/verify-*`: an EdDSA access token checked from scratch (signature and claims),
//!   and the same token again (found among the tokens verified moments ago).
//! - `ratelimit/check`: the three budgets of one call (per user, per tool, per user and
//!   tool).
//! - `audit/write-*`: one record handed to the audit writer, with `fsync = "interval"`
//!   (queued) and `"always"` (on disk before it returns).
//! - `outcome/record`: a finished call's metrics, host log line and audit record.

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_wasm_host::audit::{Audit, AuditConfig, Fsync, Record};
use mcp_wasm_host::auth::keys::{KeySet, KeySource};
use mcp_wasm_host::auth::token::Verifier;
use mcp_wasm_host::domain::PluginName;
use mcp_wasm_host::pipeline::ToolOutput;
use mcp_wasm_host::pipeline::context::{CallContext, Caller, Transport};
use mcp_wasm_host::pipeline::outcome::{self, Trace};
use mcp_wasm_host::ratelimit::{RateLimitConfig, ToolLimiter};
use mcp_wasm_host::sandbox::Sandbox;
use mcp_wasm_host::sandbox::env::PluginEnv;
use mcp_wasm_host::sandbox::pool::PoolSize;
use mcp_wasm_host::sandbox::state::Grants;
use mcp_wasm_host::schema::CompiledSchema;
use mcp_wasm_host::secrets::sources::EnvSource;
use ring::signature::KeyPair as _;
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn grants(name: &str) -> Arc<Grants> {
    Arc::new(Grants {
        env: PluginEnv::from_pairs([("WEATHER_API_BASE", "http://127.0.0.1:9")]).unwrap(),
        ..Grants::none(PluginName::try_from(name.to_owned()).unwrap())
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sandbox(c: &mut Criterion) {
    let runtime = runtime();
    let sandbox = Sandbox::new(Arc::new(EnvSource), PoolSize::default()).unwrap();
    let prepare = |name: &str| {
        let bytes = std::fs::read(test_artifacts::plugin(name)).unwrap();
        let component = runtime.block_on(sandbox.compile(bytes)).unwrap();
        sandbox.prepare(&component, grants(name)).unwrap()
    };
    let echo = prepare("echo");
    let arguments = json!({"message": "hello"}).to_string();
    let (answer, spent) =
        runtime.block_on(sandbox.call_tool(&echo, "echo", &arguments, None, Default::default()));
    drop(spent);
    let answer = answer.unwrap().unwrap();
    assert!(!answer.is_error);
    c.bench_function("instance+call/echo", |b| {
        b.to_async(&runtime).iter(|| async {
            // Freeing the instance (its slot released) is part of each iteration.
            let (answer, spent) = sandbox
                .call_tool(&echo, "echo", &arguments, None, Default::default())
                .await;
            drop(spent);
            black_box(answer.unwrap())
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

fn jwt(c: &mut Criterion) {
    use base64::Engine as _;
    let runtime = runtime();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwk: Jwk = serde_json::from_value(
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x, "alg": "EdDSA"}),
    )
    .unwrap();
    let verifier = Verifier::new(
        "https://as.example".into(),
        "https://mcp.example/mcp",
        Duration::from_secs(30),
        KeySet::new(KeySource::Fixed(vec![jwk])),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(
        &header,
        &json!({"iss": "https://as.example", "aud": "https://mcp.example/mcp",
                "sub": "ada", "scope": "tools", "client_id": "c1",
                "iat": now, "exp": now + 3600}),
        &EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    assert_eq!(
        runtime.block_on(verifier.verify(&token)).unwrap().subject,
        "ada"
    );
    c.bench_function("jwt/verify-cold", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(verifier.check(&token).await.unwrap()) })
    });
    c.bench_function("jwt/verify-cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(verifier.verify(&token).await.unwrap()) })
    });
}

fn ratelimit(c: &mut Criterion) {
    let config: RateLimitConfig = toml::from_str(
        "per_user = \"1000000/s\"\nper_tool = \"1000000/s\"\nper_user_tool = \"1000000/s\"",
    )
    .unwrap();
    let limiter = ToolLimiter::new(&config);
    let plugin = PluginName::try_from("echo".to_owned()).unwrap();
    c.bench_function("ratelimit/check", |b| {
        b.iter(|| black_box(limiter.check_here("ada", &plugin, "echo")))
    });
}

fn audit(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str, fsync: Fsync| {
        let config = AuditConfig {
            path: Some(dir.path().join(name)),
            fsync,
            ..AuditConfig::default()
        };
        let _entered = runtime.enter();
        Audit::start(&config).unwrap()
    };
    let record = || {
        let mut record = Record::now("tool_call");
        record.subject = Some("ada".into());
        record.tool = Some("echo".into());
        record.outcome = Some("ok".into());
        record
    };
    // What the writer thread does per record: seal it into its line of the chain.
    let mut sealed = record();
    sealed.request_id = Some("7d0b7c9e-3e1f-4d2a-9b5e-0c1d2e3f4a5b".into());
    sealed.peer = Some("127.0.0.1:40000".into());
    sealed.transport = Some("http".into());
    sealed.plugin = Some("echo".into());
    sealed.plugin_sha256 = Some("ab".repeat(32));
    sealed.duration_us = Some(30);
    sealed.arguments = Some(json!({"sha256": "cd".repeat(32)}));
    let prev = "ef".repeat(32);
    c.bench_function("audit/seal", |b| b.iter(|| sealed.seal(1_000, &prev, None)));
    for (name, fsync) in [("interval", Fsync::Interval), ("always", Fsync::Always)] {
        let audit = open(&format!("{name}.jsonl"), fsync);
        c.bench_function(&format!("audit/write-{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { audit.write(record()).await.unwrap() })
        });
        runtime.block_on(audit.close());
    }

    let audit = open("outcome.jsonl", Fsync::Interval);
    let ctx = CallContext {
        request_id: "7d0b7c9e-3e1f-4d2a-9b5e-0c1d2e3f4a5b".into(),
        caller: Caller::Anonymous,
        peer: Some("127.0.0.1:40000".parse().unwrap()),
        transport: Transport::Http,
        client: None,
        cancelled: Default::default(),
        needs_input: Default::default(),
    };
    let trace = Trace::default();
    let result = Ok(ToolOutput {
        content: Vec::new(),
        structured: None,
        is_error: false,
    });
    c.bench_function("outcome/record", |b| {
        b.to_async(&runtime).iter(|| async {
            outcome::record(
                &audit,
                &ctx,
                "echo",
                &trace,
                &result,
                Duration::from_micros(30),
            )
            .await
            .unwrap()
        })
    });
    runtime.block_on(audit.close());
}

criterion_group!(micro, sandbox, jwt, ratelimit, audit);
criterion_main!(micro);

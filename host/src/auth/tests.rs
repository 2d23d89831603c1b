//! Token verification against keys of each accepted kind, and every way a token can be
//! wrong: each is refused with the error a client is told.

use super::keys::{KeyError, KeySet, KeySource};
use super::token::{TokenError, Verifier};
use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A signing key and its public JWK.
struct TestKey {
    algorithm: Algorithm,
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Value,
}

fn ed25519(kid: &'static str) -> TestKey {
    let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    TestKey {
        algorithm: Algorithm::EdDSA,
        kid,
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": B64.encode(pair.public_key().as_ref())}),
    }
}

fn p256(kid: &'static str) -> TestKey {
    let algorithm = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let rng = SystemRandom::new();
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(algorithm, &rng).unwrap();
    let pair = signature::EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    TestKey {
        algorithm: Algorithm::ES256,
        kid,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }),
    }
}

fn rsa(kid: &'static str) -> TestKey {
    TestKey {
        algorithm: Algorithm::RS256,
        kid,
        encoding: EncodingKey::from_rsa_der(include_bytes!("testdata/rsa-private.der")),
        jwk: json!({
            "kty": "RSA", "kid": kid, "e": "AQAB",
            "n": include_str!("testdata/rsa-n.txt").trim(),
        }),
    }
}

impl TestKey {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "alice", "aud": RESOURCE, "client_id": "client-1",
        "scope": "weather:read notes", "iat": now(), "exp": now() + 600,
    })
}

fn verifier(keys: &[&TestKey]) -> Verifier {
    let jwks: Vec<Jwk> = keys
        .iter()
        .map(|k| serde_json::from_value(k.jwk.clone()).unwrap())
        .collect();
    Verifier::new(
        ISSUER.to_owned(),
        RESOURCE,
        std::time::Duration::from_secs(30),
        KeySet::new(KeySource::Fixed(jwks)),
    )
}

/// A token with the given header and payload (JSON), signed with `signature` bytes.
fn raw_token(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string()),
        B64.encode(signature)
    )
}

#[tokio::test]
async fn tokens_of_each_accepted_algorithm_verify() {
    let keys = [ed25519("ed"), p256("ec"), rsa("rsa")];
    let verifier = verifier(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let caller = verifier.verify(&key.sign(&claims())).await.unwrap();
        assert_eq!(caller.subject, "alice", "{:?}", key.algorithm);
        assert_eq!(caller.client_id.as_deref(), Some("client-1"));
        let scopes: Vec<&str> = caller.scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["weather:read", "notes"]);
    }
}

#[tokio::test]
async fn audience_case_and_claim_shapes_other_providers_use() {
    let key = ed25519("ed");
    let verifier = verifier(&[&key]);
    let mut token = claims();
    // Upper-case scheme and host name the same resource; aud may be an array; scopes
    // may be an `scp` array and the client an `azp`.
    token["aud"] = json!(["https://other.example.com", "HTTPS://MCP.Example.COM/mcp"]);
    token.as_object_mut().unwrap().remove("scope");
    token.as_object_mut().unwrap().remove("client_id");
    token["scp"] = json!(["notes", "not a scope"]);
    token["azp"] = json!("client-2");
    let caller = verifier.verify(&key.sign(&token)).await.unwrap();
    assert_eq!(caller.client_id.as_deref(), Some("client-2"));
    assert_eq!(caller.scopes.len(), 1, "{caller:?}");
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_reason() {
    let key = ed25519("ed");
    let other = ed25519("ed");
    let verifier = verifier(&[&key]);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut token = claims();
        change(&mut token);
        key.sign(&token)
    };
    let good = key.sign(&claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut evil_payload = claims();
    evil_payload["sub"] = json!("mallory");
    let tampered = format!("{head}.{}.{sig}", B64.encode(evil_payload.to_string()));
    let none = raw_token(&json!({"alg": "none", "typ": "JWT"}), &claims(), b"");
    // HS256 "signed" with the public key as the secret (the classic confusion).
    let public = B64.decode(key.jwk["x"].as_str().unwrap()).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("ed".into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(),
        &EncodingKey::from_secret(&public).unwrap(),
    )
    .unwrap();
    let mut unknown_kid = Header::new(Algorithm::EdDSA);
    unknown_kid.kid = Some("who".into());
    let unknown_kid = jsonwebtoken::encode(&unknown_kid, &claims(), &key.encoding).unwrap();
    let cases: Vec<(&str, String, TokenError)> = vec![
        ("garbage", "not.a.jwt".into(), TokenError::Malformed),
        ("one part", "abc".into(), TokenError::Malformed),
        ("alg none", none, TokenError::Algorithm),
        ("HS256 with the public key", hs256, TokenError::Algorithm),
        ("tampered payload", tampered, TokenError::Signature),
        (
            "another key, same kid",
            other.sign(&claims()),
            TokenError::Signature,
        ),
        (
            "unknown kid",
            unknown_kid,
            TokenError::Key(KeyError::UnknownKid("who".into())),
        ),
        (
            "wrong issuer",
            with(&|t| t["iss"] = json!("https://evil.example.com")),
            TokenError::Issuer,
        ),
        (
            "wrong audience",
            with(&|t| t["aud"] = json!("https://other.example.com/mcp")),
            TokenError::Audience,
        ),
        (
            "expired",
            with(&|t| t["exp"] = json!(now() - 120)),
            TokenError::Expired,
        ),
        (
            "not yet valid",
            with(&|t| t["nbf"] = json!(now() + 3600)),
            TokenError::NotYetValid,
        ),
        (
            "no subject",
            with(&|t| {
                t.as_object_mut().unwrap().remove("sub");
            }),
            TokenError::Claims("sub".into()),
        ),
        (
            "no audience",
            with(&|t| {
                t.as_object_mut().unwrap().remove("aud");
            }),
            TokenError::Claims("aud".into()),
        ),
        (
            "no expiry",
            with(&|t| {
                t.as_object_mut().unwrap().remove("exp");
            }),
            TokenError::Claims("exp".into()),
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(verifier.verify(&token).await, Err(expected), "{name}");
    }
    // Within the leeway, a just-expired token still passes.
    assert!(
        verifier
            .verify(&with(&|t| t["exp"] = json!(now() - 5)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn symmetric_keys_and_mismatched_algorithms_are_never_used() {
    let key = ed25519("ed");
    let jwks: Vec<Jwk> = vec![
        serde_json::from_value(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})).unwrap(),
        // A key whose `alg` disagrees with its type is dropped.
        serde_json::from_value(json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "liar", "alg": "RS256",
            "x": key.jwk["x"],
        }))
        .unwrap(),
    ];
    let verifier = Verifier::new(
        ISSUER.to_owned(),
        RESOURCE,
        std::time::Duration::from_secs(30),
        KeySet::new(KeySource::Fixed(jwks)),
    );
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".into());
    let hmac = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(b"secret").unwrap(),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hmac).await, Err(TokenError::Algorithm));
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("liar".into());
    let liar = jsonwebtoken::encode(&header, &claims(), &key.encoding).unwrap();
    assert_eq!(
        verifier.verify(&liar).await,
        Err(TokenError::Key(KeyError::UnknownKid("liar".into())))
    );
}

#[test]
fn bearer_headers_and_query_tokens() {
    assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
    assert_eq!(bearer_token("bearer  abc"), Some("abc"));
    assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
    assert_eq!(bearer_token("Bearer"), None);
    assert_eq!(bearer_token("Bearer a b"), None);
    assert!(carries_token("x=1&access_token=abc"));
    assert!(carries_token("access_token"));
    assert!(!carries_token("token=abc&my_access_token=1"));
}

#[tokio::test]
async fn refusals_carry_the_right_status_and_challenge() {
    let key = ed25519("ed");
    let auth = Auth {
        mode: AuthMode::External,
        resource: RESOURCE.to_owned(),
        metadata_url: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
        authorization_servers: vec![ISSUER.to_owned()],
        scopes_supported: vec![Scope::try_from("weather:read".to_owned()).unwrap()],
        verifier: Some(verifier(&[&key])),
        server: None,
        setup_code: None,
    };
    let no_token = auth.authenticate(None, None).await.unwrap_err();
    assert_eq!(no_token.status(), http::StatusCode::UNAUTHORIZED);
    assert!(!auth.challenge(&no_token).contains("error="));
    assert!(auth.challenge(&no_token).contains("scope=\"weather:read\""));
    let in_query = auth
        .authenticate(
            Some(&format!("Bearer {}", key.sign(&claims()))),
            Some("access_token=x"),
        )
        .await
        .unwrap_err();
    assert_eq!(in_query, Refusal::TokenInQuery);
    assert_eq!(in_query.status(), http::StatusCode::BAD_REQUEST);
    let expired = auth
        .authenticate(Some("Bearer x.y.z"), None)
        .await
        .unwrap_err();
    assert!(auth.challenge(&expired).contains("error=\"invalid_token\""));
    let good = format!("Bearer {}", key.sign(&claims()));
    let caller = auth.authenticate(Some(&good), None).await.unwrap();
    assert_eq!(caller.subject(), "alice");
    let metadata = auth.metadata().unwrap();
    assert_eq!(metadata["resource"], RESOURCE);
    assert_eq!(metadata["authorization_servers"][0], ISSUER);
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
}

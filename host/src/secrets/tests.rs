//! Store tests: round trip, tampering with every field, wrong and rotated KEKs, and
//! failures that must leave the stored file as it was.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

fn kek(byte: u8) -> Kek {
    Kek::parse(&STANDARD.encode([byte; 32]), "test key").unwrap()
}

fn store_with(values: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("secrets.json");
    for (name, value) in values {
        SecretStore::set(&path, &kek(1), name, value.as_bytes()).unwrap();
    }
    (dir, path)
}

fn get(path: &Path, kek: Kek, name: &str) -> Result<Option<String>, SecretsError> {
    SecretStore::open(path, kek)?
        .get(name)
        .map(|v| v.map(|v| v.to_string()))
}

fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut json);
    std::fs::write(path, serde_json::to_vec(&json).unwrap()).unwrap();
}

fn flip_base64(value: &mut Value) {
    let mut bytes = STANDARD.decode(value.as_str().unwrap()).unwrap();
    bytes[0] ^= 0x01;
    *value = Value::String(STANDARD.encode(bytes));
}

#[test]
fn round_trip() {
    let (_dir, path) = store_with(&[("weather-api-key", "k-123"), ("other", "v-456")]);
    assert_eq!(
        get(&path, kek(1), "weather-api-key").unwrap().unwrap(),
        "k-123"
    );
    assert_eq!(get(&path, kek(1), "other").unwrap().unwrap(), "v-456");
    assert_eq!(get(&path, kek(1), "absent").unwrap(), None);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("k-123") && !text.contains("v-456"), "{text}");
    assert!(text.contains("\"format\": 1"), "{text}");
}

#[test]
fn set_replaces_and_keeps_created() {
    let (_dir, path) = store_with(&[("a", "one")]);
    let before = SecretStore::open(&path, kek(1)).unwrap().list();
    SecretStore::set(&path, &kek(1), "a", b"two").unwrap();
    let after = SecretStore::open(&path, kek(1)).unwrap().list();
    assert_eq!(get(&path, kek(1), "a").unwrap().unwrap(), "two");
    assert_eq!(before[0].created, after[0].created);
}

/// Changes one field of a sealed entry.
type Tamper = fn(&mut Value);

#[test]
fn every_tampered_field_is_detected() {
    let cases: [(&str, Tamper, &str); 5] = [
        (
            "ciphertext",
            |s| flip_base64(&mut s["ciphertext"]),
            "value does not decrypt",
        ),
        (
            "nonce",
            |s| flip_base64(&mut s["nonce"]),
            "value does not decrypt",
        ),
        (
            "wrapped_dek",
            |s| flip_base64(&mut s["wrapped_dek"]),
            "data key does not decrypt",
        ),
        (
            "dek_nonce",
            |s| flip_base64(&mut s["dek_nonce"]),
            "data key does not decrypt",
        ),
        (
            "short nonce",
            |s| s["nonce"] = "AAAA".into(),
            "wrong length",
        ),
    ];
    for (field, tamper, expected) in cases {
        let (_dir, path) = store_with(&[("a", "secret-a")]);
        edit(&path, |json| tamper(&mut json["secrets"]["a"]["sealed"]));
        let err = get(&path, kek(1), "a").unwrap_err().to_string();
        assert!(err.contains("secret `a`"), "{field}: {err}");
        assert!(err.contains(expected), "{field}: {err}");
        assert!(!err.contains("secret-a"), "{field}: {err}");
    }
}

#[test]
fn a_changed_kek_id_is_detected() {
    let (_dir, path) = store_with(&[("a", "secret-a")]);
    // Claiming the current KEK's id for a differently-bound DEK still fails: the id is
    // bound into the wrapped DEK.
    let other = kek(2);
    let other_id = other.id().to_owned();
    edit(&path, |json| {
        json["secrets"]["a"]["sealed"]["kek_id"] = other_id.into()
    });
    let err = get(&path, other, "a").unwrap_err().to_string();
    assert!(err.contains("data key does not decrypt"), "{err}");
}

#[test]
fn entries_moved_to_another_name_do_not_decrypt() {
    let (_dir, path) = store_with(&[("a", "secret-a"), ("b", "secret-b")]);
    // Swap the whole sealed envelopes of a and b.
    edit(&path, |json| {
        let a = json["secrets"]["a"]["sealed"].take();
        let b = json["secrets"]["b"]["sealed"].take();
        json["secrets"]["a"]["sealed"] = b;
        json["secrets"]["b"]["sealed"] = a;
    });
    let err = get(&path, kek(1), "a").unwrap_err().to_string();
    assert!(err.contains("data key does not decrypt"), "{err}");

    // Move only the value ciphertext (with its nonce) of b into a.
    let (_dir, path) = store_with(&[("a", "secret-a"), ("b", "secret-b")]);
    edit(&path, |json| {
        for field in ["ciphertext", "nonce"] {
            json["secrets"]["a"]["sealed"][field] = json["secrets"]["b"]["sealed"][field].clone();
        }
    });
    let err = get(&path, kek(1), "a").unwrap_err().to_string();
    assert!(err.contains("value does not decrypt"), "{err}");
}

#[test]
fn wrong_kek_is_named_by_id() {
    let (_dir, path) = store_with(&[("a", "secret-a")]);
    let err = get(&path, kek(9), "a").unwrap_err().to_string();
    assert!(
        err.contains(kek(1).id()) && err.contains(kek(9).id()),
        "{err}"
    );
    // And a writer with another KEK may not mix keys in one store.
    let err = SecretStore::set(&path, &kek(9), "b", b"x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("configured KEK"), "{err}");
    assert_eq!(get(&path, kek(1), "b").unwrap(), None);
}

#[test]
fn rotation_rewraps_every_dek() {
    let (_dir, path) = store_with(&[("a", "secret-a"), ("b", "secret-b")]);
    let before: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(SecretStore::rotate_kek(&path, &kek(1), &kek(2)).unwrap(), 2);
    let after: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for name in ["a", "b"] {
        let (old, new) = (
            &before["secrets"][name]["sealed"],
            &after["secrets"][name]["sealed"],
        );
        assert_eq!(
            old["ciphertext"], new["ciphertext"],
            "values are not re-encrypted"
        );
        assert_ne!(old["wrapped_dek"], new["wrapped_dek"]);
    }
    assert_eq!(get(&path, kek(2), "a").unwrap().unwrap(), "secret-a");
    assert_eq!(get(&path, kek(2), "b").unwrap().unwrap(), "secret-b");
    let err = get(&path, kek(1), "a").unwrap_err().to_string();
    assert!(err.contains("configured KEK"), "{err}");
}

#[test]
fn rotation_that_fails_after_the_temp_file_keeps_the_old_store() {
    let (dir, path) = store_with(&[("a", "secret-a")]);
    let before = std::fs::read(&path).unwrap();
    let err = SecretStore::rotate_kek_with(&path, &kek(1), &kek(2), || {
        Err(std::io::Error::other("disk vanished"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk vanished"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(get(&path, kek(1), "a").unwrap().unwrap(), "secret-a");
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".tmp-")),
        "temp file left: {names:?}"
    );
    drop(dir);
}

#[test]
fn rotation_with_the_wrong_old_kek_writes_nothing() {
    let (_dir, path) = store_with(&[("a", "secret-a")]);
    let before = std::fs::read(&path).unwrap();
    let err = SecretStore::rotate_kek(&path, &kek(7), &kek(2)).unwrap_err();
    assert!(err.to_string().contains("configured KEK"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn bad_values_and_names_are_refused() {
    let (_dir, path) = store_with(&[]);
    for (name, value, expected) in [
        ("bad name", &b"v"[..], "credential name"),
        ("", b"v", "credential name"),
        ("a", b"", "empty"),
        ("a", &[0xff, 0xfe], "UTF-8"),
    ] {
        let err = SecretStore::set(&path, &kek(1), name, value)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{name:?}: {err}");
    }
    let big = vec![b'x'; MAX_VALUE_BYTES + 1];
    let err = SecretStore::set(&path, &kek(1), "a", &big).unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    let err = SecretStore::remove(&path, "absent").unwrap_err();
    assert!(err.to_string().contains("no secret `absent`"), "{err}");
}

#[test]
fn a_corrupt_store_is_reported_and_not_overwritten() {
    let (_dir, path) = store_with(&[("a", "secret-a")]);
    std::fs::write(&path, b"{ not json").unwrap();
    let err = SecretStore::set(&path, &kek(1), "b", b"x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid store file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
    std::fs::write(&path, br#"{"format": 2, "secrets": {}}"#).unwrap();
    let err = SecretStore::open(&path, kek(1)).unwrap_err().to_string();
    assert!(err.contains("format 2"), "{err}");
}

#[test]
fn kek_parsing() {
    let generated = Kek::generate();
    assert!(Kek::parse(&generated, "x").is_ok());
    assert_ne!(*Kek::generate(), *generated);
    for bad in ["", "not base64!", &STANDARD.encode([0u8; 16])] {
        let err = Kek::parse(bad, "MCP_HOST_KEK").unwrap_err().to_string();
        assert!(
            err.contains("MCP_HOST_KEK is not base64 of 32 bytes"),
            "{err}"
        );
    }
}

#[cfg(unix)]
#[test]
fn kek_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    std::fs::write(&path, Kek::generate().as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Kek::from_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Kek::from_file(&path).is_ok());
}

fn value(store: &SecretStore, name: &str) -> Option<String> {
    store.get(name).unwrap().map(|v| v.to_string())
}

/// Gives the file a modification time no earlier change had: file times come from a
/// coarse clock, so two writes in a row can share one, and an in-place edit of the
/// same length would otherwise look unchanged.
fn new_version(path: &Path) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STEP: AtomicU64 = AtomicU64::new(1);
    let later =
        SystemTime::now() + std::time::Duration::from_secs(STEP.fetch_add(1, Ordering::Relaxed));
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

#[test]
fn refresh_picks_up_changes_made_while_open() {
    let (_dir, path) = store_with(&[("a", "one")]);
    let mut store = SecretStore::open(&path, kek(1)).unwrap();
    assert!(!store.refresh().unwrap(), "nothing changed yet");
    SecretStore::set(&path, &kek(1), "a", b"two").unwrap();
    SecretStore::set(&path, &kek(1), "b", b"new").unwrap();
    new_version(&path);
    assert!(store.refresh().unwrap());
    assert_eq!(value(&store, "a").as_deref(), Some("two"));
    assert_eq!(value(&store, "b").as_deref(), Some("new"));
    SecretStore::remove(&path, "a").unwrap();
    new_version(&path);
    assert!(store.refresh().unwrap());
    assert_eq!(value(&store, "a"), None);
}

#[test]
fn refresh_keeps_what_it_had_when_the_new_file_is_unusable() {
    let (_dir, path) = store_with(&[("a", "one")]);
    let mut store = SecretStore::open(&path, kek(1)).unwrap();
    let good = std::fs::read(&path).unwrap();
    // Not a store file.
    std::fs::write(&path, b"{ not json").unwrap();
    new_version(&path);
    let err = store.refresh().unwrap_err().to_string();
    assert!(err.contains("not a valid store file"), "{err}");
    assert_eq!(value(&store, "a").as_deref(), Some("one"));
    // The same bad version is not read (or reported) again.
    assert!(!store.refresh().unwrap());
    // A tampered secret.
    std::fs::write(&path, &good).unwrap();
    edit(&path, |json| {
        flip_base64(&mut json["secrets"]["a"]["sealed"]["ciphertext"])
    });
    new_version(&path);
    assert!(store.refresh().is_err());
    assert_eq!(value(&store, "a").as_deref(), Some("one"));
    // Re-keyed under a KEK this host does not have.
    std::fs::write(&path, &good).unwrap();
    SecretStore::rotate_kek(&path, &kek(1), &kek(2)).unwrap();
    new_version(&path);
    let err = store.refresh().unwrap_err().to_string();
    assert!(err.contains(kek(2).id()), "{err}");
    assert_eq!(value(&store, "a").as_deref(), Some("one"));
}

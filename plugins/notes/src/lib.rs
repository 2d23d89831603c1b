//! The notes plugin: add, list and search short notes kept as files in the folder the
//! operator grants read-write at `/data`. It needs no network and no key, so it answers
//! on any machine; it shows the filesystem capability (each note is one file, created
//! with `create_new` so two calls at once never write the same one).

use mcp_wasm_sdk::{Annotations, Error, JsonSchema, Plugin, Structured, Tool};
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Where the operator's grant appears inside the plugin.
const FOLDER: &str = "/data";
/// Notes kept at most: past it, `add_note` refuses (a folder, not a database).
const MAX_NOTES: usize = 10_000;

/// A stored note.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
struct Note {
    /// Its number, from 1.
    id: u32,
    title: String,
    text: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Add {
    /// A short title.
    #[schemars(length(min = 1, max = 200))]
    title: String,
    /// The note itself.
    #[schemars(length(min = 1, max = 10000))]
    text: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct List {}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Search {
    /// Words to look for in titles and texts (case-insensitive).
    #[schemars(length(min = 1, max = 100))]
    query: String,
}

/// Notes, as the listing and search tools return them.
#[derive(Serialize, JsonSchema)]
struct Notes {
    notes: Vec<Note>,
}

fn folder() -> Result<&'static Path, Error> {
    let folder = Path::new(FOLDER);
    if folder.is_dir() {
        Ok(folder)
    } else {
        Err(Error::Internal(format!(
            "{FOLDER} is not granted; the operator must add files = [{{ host = \"...\", \
             guest = \"{FOLDER}\", mode = \"rw\" }}] to this plugin's config"
        )))
    }
}

fn note_path(folder: &Path, id: u32) -> PathBuf {
    folder.join(format!("note-{id:06}.json"))
}

/// Every note, by number. A file that is not a note is skipped, not fatal.
fn read_all(folder: &Path) -> Result<Vec<Note>, Error> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| Error::Internal(format!("cannot list {FOLDER}: {e}")))?;
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("note-") && name.ends_with(".json")) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(entry.path())
            && let Ok(note) = serde_json::from_slice::<Note>(&bytes)
        {
            notes.push(note);
        }
    }
    notes.sort_by_key(|note| note.id);
    Ok(notes)
}

fn add_note(args: Add) -> Result<String, Error> {
    let folder = folder()?;
    let notes = read_all(folder)?;
    if notes.len() >= MAX_NOTES {
        return Err(Error::Tool(format!(
            "There are already {MAX_NOTES} notes; no more can be added."
        )));
    }
    let mut id = notes.last().map_or(1, |note| note.id + 1);
    let note = loop {
        let note = Note {
            id,
            title: args.title.trim().to_owned(),
            text: args.text.clone(),
        };
        // `create_new`: a number another call took first is skipped, never overwritten.
        match std::fs::File::create_new(note_path(folder, id)) {
            Ok(mut file) => {
                let body = serde_json::to_vec(&note).expect("a note serializes");
                file.write_all(&body)
                    .map_err(|e| Error::Internal(format!("cannot write note {id}: {e}")))?;
                break note;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => id += 1,
            Err(e) => {
                return Err(Error::Internal(format!(
                    "cannot create a note in {FOLDER}: {e} (is it granted read-write?)"
                )));
            }
        }
    };
    Ok(format!("Saved note {}: {}", note.id, note.title))
}

fn list_notes(_: List) -> Result<Structured<Notes>, Error> {
    let notes = read_all(folder()?)?;
    let text = if notes.is_empty() {
        "No notes yet.".to_owned()
    } else {
        notes
            .iter()
            .map(|note| format!("{}. {}", note.id, note.title))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Structured {
        value: Notes { notes },
        text,
    })
}

fn search_notes(args: Search) -> Result<Structured<Notes>, Error> {
    let query = args.query.to_lowercase();
    let notes: Vec<Note> = read_all(folder()?)?
        .into_iter()
        .filter(|note| {
            note.title.to_lowercase().contains(&query) || note.text.to_lowercase().contains(&query)
        })
        .collect();
    let text = if notes.is_empty() {
        format!("No note mentions \"{}\".", args.query)
    } else {
        notes
            .iter()
            .map(|note| format!("{}. {}: {}", note.id, note.title, note.text))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Structured {
        value: Notes { notes },
        text,
    })
}

struct NotesPlugin;

impl Plugin for NotesPlugin {
    fn tools() -> Vec<Tool> {
        // Notes are the plugin's own closed world; listing and searching change nothing.
        let reads = Annotations {
            read_only: Some(true),
            open_world: Some(false),
            ..Annotations::none()
        };
        vec![
            Tool::new("add_note", "Saves a note with a title.", add_note)
                .title("Add a note")
                .annotations(Annotations {
                    read_only: Some(false),
                    destructive: Some(false),
                    idempotent: Some(false),
                    open_world: Some(false),
                }),
            Tool::structured(
                "list_notes",
                "Lists every note by number and title.",
                list_notes,
            )
            .title("List notes")
            .annotations(reads),
            Tool::structured(
                "search_notes",
                "Finds the notes whose title or text contains the query (case-insensitive).",
                search_notes,
            )
            .title("Search notes")
            .annotations(reads),
        ]
    }
}

mcp_wasm_sdk::export!(NotesPlugin);

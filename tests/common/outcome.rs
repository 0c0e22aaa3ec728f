//! Assertions on the `--json` document an ops command (`publish`,
//! `switchover`) prints: its exit code, `outcome` and `error`.
#![allow(dead_code)]

use std::fmt::Display;

use serde_json::Value;

/// The command exited with `code` and its document says `outcome`; `shown`
/// (the whole output, or the document) is printed when not.
#[track_caller]
pub fn assert_outcome(got: i32, doc: &Value, code: i32, outcome: &str, shown: &dyn Display) {
    assert_eq!(
        (got, doc["outcome"].as_str()),
        (code, Some(outcome)),
        "{shown}"
    );
}

/// The command failed (exit 1) with `outcome`, and its `error` mentions `why`.
#[track_caller]
pub fn assert_failed(got: i32, doc: &Value, outcome: &str, why: &str, shown: &dyn Display) {
    assert_outcome(got, doc, 1, outcome, shown);
    assert!(doc["error"].as_str().unwrap().contains(why), "{doc}");
}

//! Every file under config/ parses and validates; config/example.toml is
//! the defaults, with every option written out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mysql_zk_proxy_core::config::{Config, Overrides};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn toml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .expect("config/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_file_loads_and_validates() {
    let files = toml_files();
    for name in ["example.toml", "devenv.toml", "sandbox.toml"] {
        assert!(
            files.iter().any(|p| p.ends_with(name)),
            "config/{name} missing"
        );
    }
    for path in &files {
        if let Err(e) = Config::load(Some(path), &Overrides::default()) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// Every `table.key` path of a TOML document.
fn keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in table {
        let path = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => keys(t, &format!("{path}."), out),
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn example_is_the_defaults_with_every_option() {
    let path = config_dir().join("example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = Config::from_toml(&text, &path).unwrap();
    assert_eq!(parsed, Config::default());

    let mut written = BTreeSet::new();
    keys(&text.parse::<toml::Table>().unwrap(), "", &mut written);
    let mut all = BTreeSet::new();
    keys(
        &toml::Table::try_from(Config::default()).unwrap(),
        "",
        &mut all,
    );
    assert_eq!(written, all, "example.toml must list every option");
}

//! dbsync describes itself like an installed tool: shell completions and a man page, made
//! from the same definition as `--help`, with no config file around.

mod common;
use common::*;

#[test]
fn completions_and_man_page_come_from_the_command_line_definition() {
    let job = Job::new("");
    std::fs::remove_file(job.path("config.ini")).unwrap();
    for (shell, marker) in [
        ("bash", "_dbsync()"),
        ("zsh", "#compdef dbsync"),
        ("fish", "complete -c dbsync"),
    ] {
        let out = job.run(&["completions", shell]).expect(0).stdout();
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("full-refresh") && out.contains("summary-json"),
            "{shell}"
        );
    }
    let man = job.run(&["man"]).expect(0).stdout();
    assert!(
        man.starts_with(".ie") || man.contains(".TH dbsync 1"),
        "{man}"
    );
    assert!(
        man.contains(".TH dbsync 1") && man.contains("full\\-refresh"),
        "{man}"
    );
    assert!(
        man.contains("Exit codes"),
        "the exit codes are in the man page too"
    );
    let err = job.run(&["completions", "tcsh"]).expect(2).stderr();
    assert!(err.contains("bash") && err.contains("zsh"), "{err}");
}

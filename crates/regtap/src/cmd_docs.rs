//! `regtap completions SHELL` and `regtap man`: generated from the same clap
//! definition the command parses with, so they never drift from it.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the completion script for `shell` to standard output, e.g.
/// `regtap completions bash > /etc/bash_completion.d/regtap`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    crate::cmd_inspect::print_all(&completion_script(args.shell))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the man page (roff) to standard output, e.g. `regtap man | man -l -`.
pub fn man() -> anyhow::Result<ExitCode> {
    crate::cmd_inspect::print_all(&man_page()?)?;
    Ok(ExitCode::SUCCESS)
}

fn completion_script(shell: Shell) -> String {
    let mut command = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "regtap", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// One page: the top-level command, then a section per subcommand.
fn man_page() -> anyhow::Result<String> {
    let command = crate::Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render(&mut out).context("cannot render the man page")?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let sub = sub.clone().bin_name(format!("regtap {name}"));
        out.extend_from_slice(format!(".SH \"REGTAP {}\"\n", name.to_uppercase()).as_bytes());
        let man = clap_mangen::Man::new(sub);
        man.render_description_section(&mut out)
            .and_then(|()| man.render_synopsis_section(&mut out))
            .and_then(|()| man.render_options_section(&mut out))
            .with_context(|| format!("cannot render the man page section of {name}"))?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand a user can type, as clap knows them.
    fn subcommands() -> Vec<String> {
        crate::Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect()
    }

    /// A help text doubled by two identical doc-comment lines (which clap
    /// joins into one paragraph) reads "X X" in `regtap --help`.
    #[test]
    fn no_help_text_says_the_same_thing_twice() {
        fn check(command: &clap::Command, path: &str) {
            let texts = std::iter::once(command.get_about())
                .chain(command.get_arguments().map(|a| a.get_help()))
                .flatten()
                .map(ToString::to_string);
            for text in texts {
                let words: Vec<&str> = text.split_whitespace().collect();
                let half = words.len() / 2;
                assert!(
                    half == 0 || words[..half] != words[half..],
                    "{path}: {text}"
                );
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&crate::Cli::command(), "regtap");
    }

    #[test]
    fn bash_completion_is_valid_bash_naming_every_subcommand() {
        let script = completion_script(Shell::Bash);
        for name in subcommands() {
            assert!(script.contains(&name), "bash completion lacks {name}");
        }
        // bash itself parses it (`-n`: read, do not execute).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regtap.bash");
        std::fs::write(&path, &script).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .expect("bash runs");
        assert!(status.success(), "bash -n rejected the completion script");
    }

    #[test]
    fn every_shell_gets_a_script() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let script = completion_script(shell);
            assert!(script.contains("inspect"), "{shell} script lacks inspect");
            assert!(script.contains("doctor"), "{shell} script lacks doctor");
        }
    }

    #[test]
    fn man_page_is_roff_with_a_section_per_subcommand() {
        let page = man_page().unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH regtap"),
            "{page}"
        );
        assert!(page.contains(".SH NAME"));
        for name in subcommands() {
            let heading = format!(".SH \"REGTAP {}\"", name.to_uppercase());
            assert!(page.contains(&heading), "man page lacks {heading}");
        }
        // The options of a subcommand are there, not only its name.
        assert!(
            page.contains("registry\\-secret"),
            "inspect's options missing"
        );
    }

    #[test]
    fn man_page_formats_with_man_when_available() {
        let Ok(output) = std::process::Command::new("man").arg("--version").output() else {
            eprintln!("SKIPPED: no `man` to format the page with");
            return;
        };
        assert!(output.status.success());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regtap.1");
        std::fs::write(&path, man_page().unwrap()).unwrap();
        let formatted = std::process::Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&path)
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(formatted.status.success(), "{formatted:?}");
        let text = String::from_utf8_lossy(&formatted.stdout);
        assert!(text.contains("REGTAP INSPECT"), "{text}");
    }
}

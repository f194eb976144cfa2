//! `arch-check`: the workspace checks from the command line.
//!
//! ```text
//! arch-check cycles [ROOT]            module cycles and forbidden dependencies; exit 1 on findings
//! arch-check graph  [ROOT] [--dot]    every crate's per-level module graphs
//! arch-check sizes  [ROOT] [--top N]  biggest files and functions (default N = 10)
//! arch-check refs   [ROOT]            every reference the check sees (to explain a finding)
//! ```
//!
//! ROOT is the repository root (default: the current directory). Exit status 2 means
//! the tree could not be read or the arguments were wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use tongdai_arch_check::{render, sizes, workspace};

const USAGE: &str = "usage:
  arch-check cycles [ROOT]            module cycles and forbidden dependencies (exit 1 on findings)
  arch-check graph  [ROOT] [--dot]    each crate's module graph per level, as text or DOT
  arch-check sizes  [ROOT] [--top N]  the N biggest files and functions (default 10)
  arch-check refs   [ROOT]            every reference the check sees, with its target module";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("arch-check: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.to_string());
    };
    let mut root: Option<PathBuf> = None;
    let mut dot = false;
    let mut top = 10usize;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--dot" if command == "graph" => dot = true,
            "--top" if command == "sizes" => {
                let n = rest.next().ok_or("--top needs a number")?;
                top = n.parse().map_err(|_| format!("--top {n}: not a number"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other if other.starts_with('-') || root.is_some() => {
                return Err(format!("unexpected argument {other}\n{USAGE}"));
            }
            other => root = Some(PathBuf::from(other)),
        }
    }
    let root = root.unwrap_or_else(|| PathBuf::from("."));
    match command.as_str() {
        "cycles" => {
            let report = workspace::check(&root).map_err(|e| e.to_string())?;
            print!("{report}");
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        "graph" => {
            let report = workspace::check(&root).map_err(|e| e.to_string())?;
            if dot {
                print!("{}", render::dot(&report.crates));
            } else {
                print!("{}", render::text(&report.root, &report.crates));
            }
            Ok(ExitCode::SUCCESS)
        }
        "sizes" => {
            let sizes = sizes::measure(&root).map_err(|e| e.to_string())?;
            print!("{}", sizes.render(top));
            Ok(ExitCode::SUCCESS)
        }
        "refs" => {
            let report = workspace::check(&root).map_err(|e| e.to_string())?;
            print!("{}", render::references(&report.root, &report.crates));
            Ok(ExitCode::SUCCESS)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

//! What to start: the image's `/etc/enclave/cmd` and `/etc/enclave/env`, and the
//! [`Launch`] built from them.
//!
//! Both files come from the application ramdisk, which is measured into PCR2, so their
//! contents are trusted; the checks here catch mistakes in building the image, and each
//! error names the file and the line so the console log says what to fix.
//!
//! Formats (UTF-8, `\n` line ends, one optional final newline):
//! - `cmd`: one argument per line, the first being the program's absolute path. No shell
//!   quoting: a line is an argument, byte for byte, so an empty line is an empty argument.
//! - `env`: `KEY=VALUE` lines, split at the first `=`; empty lines are skipped. Absent or
//!   empty means no variables.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

/// The application's command, one argument per line.
pub const CMD_PATH: &str = "/etc/enclave/cmd";

/// The application's environment, `KEY=VALUE` per line; may be absent.
pub const ENV_PATH: &str = "/etc/enclave/env";

/// The largest `cmd` or `env` file accepted. Generous for a command and its environment;
/// small enough that a wrong file (a binary copied to the wrong name) is refused quickly.
pub const MAX_FILE_LEN: usize = 64 * 1024;

/// The variable through which the application learns its parent's CID. Set by init from
/// the same value it used for the heartbeat, so the env file may not set it.
pub const PARENT_CID_VAR: &str = "ENCLAVE_PARENT_CID";

/// A `cmd` or `env` file cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (for `cmd`, this includes its absence).
    #[error("{}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_LEN`].
    #[error("{}: larger than the limit of {limit} bytes", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The command file names no program.
    #[error("{}: empty; the first line must be the program's absolute path", file.display())]
    EmptyCommand {
        /// The file.
        file: PathBuf,
    },
    /// One line is malformed.
    #[error("{}, line {line}: {problem}", file.display())]
    Line {
        /// The file.
        file: PathBuf,
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
}

/// What is wrong with one line of a `cmd` or `env` file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LineProblem {
    /// Not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// Contains a NUL byte, which cannot be passed in an argument or variable.
    #[error("contains a NUL byte")]
    Nul,
    /// Contains a carriage return: the file was probably written with CRLF line ends, and
    /// the `\r` would silently become part of an argument.
    #[error("contains a carriage return (CRLF line ends?)")]
    CarriageReturn,
    /// The program (first line of `cmd`) is not an absolute path.
    #[error("the program {0:?} is not an absolute path")]
    RelativeProgram(String),
    /// An `env` line without `=`.
    #[error("no '=' (expected KEY=VALUE)")]
    MissingEquals,
    /// An `env` line with nothing before `=`.
    #[error("empty variable name")]
    EmptyKey,
    /// An `env` variable set twice: which one was meant is ambiguous.
    #[error("{0} is already set on an earlier line")]
    DuplicateKey(String),
    /// An `env` variable that init sets itself.
    #[error("{0} is set by enclave-init and may not be set in the env file")]
    ReservedKey(String),
}

/// The application's command as read from the `cmd` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCommand {
    /// The program's absolute path.
    pub program: PathBuf,
    /// The arguments after the program (the program's own name is not repeated: `argv[0]`
    /// is the program path, as `std::process::Command` sets it).
    pub args: Vec<String>,
}

/// Parses the `cmd` file's contents; `file` only names it in errors.
pub fn parse_cmd(file: &Path, bytes: &[u8]) -> Result<AppCommand, ConfigError> {
    let mut lines = lines(file, bytes)?.into_iter();
    let Some((line, program)) = lines.next() else {
        return Err(ConfigError::EmptyCommand {
            file: file.to_owned(),
        });
    };
    if program.is_empty() {
        return Err(ConfigError::EmptyCommand {
            file: file.to_owned(),
        });
    }
    if !program.starts_with('/') {
        return Err(line_error(
            file,
            line,
            LineProblem::RelativeProgram(program.to_owned()),
        ));
    }
    Ok(AppCommand {
        program: PathBuf::from(program),
        args: lines.map(|(_, arg)| arg.to_owned()).collect(),
    })
}

/// Parses the `env` file's contents into `(key, value)` pairs in file order; `file` only
/// names it in errors.
pub fn parse_env(file: &Path, bytes: &[u8]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (line, text) in lines(file, bytes)? {
        if text.is_empty() {
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(line_error(file, line, LineProblem::MissingEquals));
        };
        if key.is_empty() {
            return Err(line_error(file, line, LineProblem::EmptyKey));
        }
        if key == PARENT_CID_VAR {
            return Err(line_error(
                file,
                line,
                LineProblem::ReservedKey(key.to_owned()),
            ));
        }
        if vars.iter().any(|(k, _)| k == key) {
            return Err(line_error(
                file,
                line,
                LineProblem::DuplicateKey(key.to_owned()),
            ));
        }
        vars.push((key.to_owned(), value.to_owned()));
    }
    Ok(vars)
}

/// Splits into numbered (from 1) UTF-8 lines, dropping one final newline, and refuses
/// NUL bytes and carriage returns.
fn lines<'a>(file: &Path, bytes: &'a [u8]) -> Result<Vec<(usize, &'a str)>, ConfigError> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index.saturating_add(1);
        if raw.contains(&0) {
            return Err(line_error(file, line, LineProblem::Nul));
        }
        if raw.contains(&b'\r') {
            return Err(line_error(file, line, LineProblem::CarriageReturn));
        }
        let text =
            std::str::from_utf8(raw).map_err(|_| line_error(file, line, LineProblem::NotUtf8))?;
        out.push((line, text));
    }
    Ok(out)
}

fn line_error(file: &Path, line: usize, problem: LineProblem) -> ConfigError {
    ConfigError::Line {
        file: file.to_owned(),
        line,
        problem,
    }
}

/// Everything needed to start the application: its command and its complete environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program's absolute path.
    pub program: PathBuf,
    /// The arguments after the program.
    pub args: Vec<String>,
    /// The complete environment, in order: the env file's variables, then
    /// [`PARENT_CID_VAR`].
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The launch for `command` with the env file's `env`, telling the application its
    /// parent's CID.
    pub fn new(command: AppCommand, mut env: Vec<(String, String)>, parent_cid: u32) -> Self {
        env.push((PARENT_CID_VAR.to_owned(), parent_cid.to_string()));
        Self {
            program: command.program,
            args: command.args,
            env,
        }
    }

    /// The [`Command`] that starts the application: with exactly [`Launch::env`] as its
    /// environment, stdin from `/dev/null`, stdout and stderr inherited (the console).
    ///
    /// The environment is cleared first because init's own environment comes from the
    /// kernel, which passes unknown `key=value` command-line words into it, and under QEMU
    /// whoever starts the VM writes the command line.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(bytes: &[u8]) -> Result<AppCommand, ConfigError> {
        parse_cmd(Path::new(CMD_PATH), bytes)
    }

    fn env(bytes: &[u8]) -> Result<Vec<(String, String)>, ConfigError> {
        parse_env(Path::new(ENV_PATH), bytes)
    }

    fn line_problem(err: ConfigError) -> (usize, LineProblem) {
        match err {
            ConfigError::Line { line, problem, .. } => (line, problem),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn cmd_program_and_args() {
        let c = cmd(b"/usr/bin/enclave-app\n--port\n5000\n").unwrap();
        assert_eq!(c.program, PathBuf::from("/usr/bin/enclave-app"));
        assert_eq!(c.args, vec!["--port", "5000"]);
    }

    #[test]
    fn cmd_without_final_newline() {
        let c = cmd(b"/usr/bin/enclave-app\n--x").unwrap();
        assert_eq!(c.args, vec!["--x"]);
    }

    #[test]
    fn cmd_lines_are_arguments_verbatim() {
        // No shell: spaces and quotes stay, an empty line is an empty argument, and only
        // one final newline is a terminator.
        let c = cmd(b"/bin/app\na b\n\"q\"\n\n").unwrap();
        assert_eq!(c.args, vec!["a b", "\"q\"", ""]);
    }

    #[test]
    fn cmd_empty_is_refused() {
        for bytes in [&b""[..], b"\n", b"\n--flag\n"] {
            let err = cmd(bytes).unwrap_err();
            assert!(
                matches!(err, ConfigError::EmptyCommand { .. }),
                "{bytes:?} gave {err:?}"
            );
            assert!(err.to_string().contains(CMD_PATH), "{err}");
        }
    }

    #[test]
    fn cmd_relative_program_is_refused() {
        let err = cmd(b"usr/bin/enclave-app\n").unwrap_err();
        assert!(
            err.to_string().contains("/etc/enclave/cmd, line 1"),
            "{err}"
        );
        assert_eq!(
            line_problem(err),
            (
                1,
                LineProblem::RelativeProgram("usr/bin/enclave-app".into())
            )
        );
    }

    #[test]
    fn cmd_bad_bytes_name_the_line() {
        assert_eq!(
            line_problem(cmd(b"/bin/app\nok\nb\0d\n").unwrap_err()),
            (3, LineProblem::Nul)
        );
        assert_eq!(
            line_problem(cmd(b"/bin/app\n\xff\n").unwrap_err()),
            (2, LineProblem::NotUtf8)
        );
        assert_eq!(
            line_problem(cmd(b"/bin/app\r\n--x\r\n").unwrap_err()),
            (1, LineProblem::CarriageReturn)
        );
    }

    #[test]
    fn env_pairs_in_order() {
        let vars = env(b"RUST_LOG=info\nA=b=c\nEMPTY=\n\nZ=1").unwrap();
        assert_eq!(
            vars,
            vec![
                ("RUST_LOG".to_owned(), "info".to_owned()),
                ("A".to_owned(), "b=c".to_owned()),
                ("EMPTY".to_owned(), String::new()),
                ("Z".to_owned(), "1".to_owned()),
            ]
        );
        assert!(env(b"").unwrap().is_empty());
        assert!(env(b"\n").unwrap().is_empty());
    }

    #[test]
    fn env_bad_lines_are_refused() {
        let err = env(b"A=1\nJUSTAWORD\n").unwrap_err();
        assert!(
            err.to_string().contains("/etc/enclave/env, line 2"),
            "{err}"
        );
        assert_eq!(line_problem(err), (2, LineProblem::MissingEquals));
        assert_eq!(
            line_problem(env(b"=x\n").unwrap_err()),
            (1, LineProblem::EmptyKey)
        );
        assert_eq!(
            line_problem(env(b"A=1\nB=2\nA=3\n").unwrap_err()),
            (3, LineProblem::DuplicateKey("A".into()))
        );
        assert_eq!(
            line_problem(env(b"ENCLAVE_PARENT_CID=5\n").unwrap_err()),
            (1, LineProblem::ReservedKey("ENCLAVE_PARENT_CID".into()))
        );
        assert_eq!(
            line_problem(env(b"A=x\0y\n").unwrap_err()),
            (1, LineProblem::Nul)
        );
    }

    #[test]
    fn launch_appends_the_parent_cid() {
        let launch = Launch::new(cmd(b"/bin/app\n-v\n").unwrap(), env(b"A=1\n").unwrap(), 2);
        assert_eq!(
            launch.env,
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("ENCLAVE_PARENT_CID".to_owned(), "2".to_owned()),
            ]
        );
    }

    /// Runs the real [`Launch::command`] with `/usr/bin/env` as the program: the child must
    /// see exactly the launch's variables, none of this test process's (PATH, HOME, ...).
    #[test]
    fn command_clears_the_inherited_environment() {
        let env_program = Path::new("/usr/bin/env");
        if !env_program.exists() {
            eprintln!("skipped: no /usr/bin/env on this machine");
            return;
        }
        assert!(
            std::env::var_os("PATH").is_some(),
            "the test needs an inherited variable to prove it is dropped"
        );
        let launch = Launch::new(
            AppCommand {
                program: env_program.to_owned(),
                args: vec![],
            },
            vec![("A".to_owned(), "1".to_owned())],
            7,
        );
        let output = launch
            .command()
            .stdout(Stdio::piped())
            .output()
            .expect("run /usr/bin/env");
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "A=1\nENCLAVE_PARENT_CID=7\n"
        );
    }
}

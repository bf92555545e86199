//! Text-to-speech through an external command (a prompt worker's job,
//! never a shard's). The default is espeak-ng; `tts_command` in the config
//! names another program, so a carrier can put a cloud TTS behind a small
//! script without code changes.
//!
//! The command gets the text on its standard input and writes a WAV file
//! (any rate, any channel count) to the path in `{out}`. Placeholders in
//! its arguments: `{voice}` (espeak-ng's voice name: the BCP 47 language in
//! lower case, then `+` and the requested voice, e.g. `en-us+f3`), `{lang}`
//! (the BCP 47 tag as given), `{out}`. For espeak-ng, text starting with
//! `<speak` is passed as SSML (`-m`). The program runs without a shell,
//! with each argument as one argv entry, for at most [`TIMEOUT`].
//!
//! Or `tts_url` names an HTTP endpoint (a cloud TTS behind a small
//! gateway, or one that speaks this directly): legatod POSTs
//! `{"text": …, "language": …, "voice": …}` as JSON and expects audio back
//! (200 with a WAV, MP3, FLAC or Ogg body; the Content-Type or the URL's
//! extension hints the format); any other status fails the Say with the
//! status and the start of the body.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a synthesis may run.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// The configured engine, with its program found on this host.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    pub(crate) program: PathBuf,
    args: Vec<String>,
    espeak: bool,
}

impl Engine {
    /// The engine `command` describes (empty: espeak-ng), if its program
    /// exists.
    pub(crate) fn find(command: &[String]) -> Option<Self> {
        let (name, args, espeak) = match command.split_first() {
            Some((name, args)) => (name.as_str(), args.to_vec(), false),
            None => (
                "espeak-ng",
                ["-v", "{voice}", "-w", "{out}", "--stdin"]
                    .map(str::to_owned)
                    .to_vec(),
                true,
            ),
        };
        Some(Self {
            program: program_path(name)?,
            args,
            espeak,
        })
    }

    /// The argv for one synthesis (`{out}` is filled in by
    /// [`synthesize`]).
    pub(crate) fn argv(&self, language: &str, voice: &str, text: &str) -> Vec<String> {
        let mut espeak_voice = language.to_ascii_lowercase();
        if !voice.is_empty() {
            espeak_voice.push('+');
            espeak_voice.push_str(voice);
        }
        let mut argv = vec![self.program.to_string_lossy().into_owned()];
        if self.espeak && text.trim_start().starts_with("<speak") {
            argv.push("-m".into());
        }
        argv.extend(self.args.iter().map(|a| {
            a.replace("{voice}", &espeak_voice)
                .replace("{lang}", language)
        }));
        argv
    }
}

/// The file `name` runs: itself when it holds a `/`, else the first match
/// on `PATH`.
fn program_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Longest error body quoted from an HTTP engine.
const ERROR_BODY: usize = 200;

/// Asks the HTTP engine at `url` to speak `text`: the audio (at most
/// `max_bytes`) and a format hint.
pub(crate) async fn request(
    client: &reqwest::Client,
    url: &str,
    text: &str,
    language: &str,
    voice: &str,
    max_bytes: u64,
) -> Result<(Vec<u8>, Option<String>), String> {
    use futures::StreamExt as _;
    let body = serde_json::json!({ "text": text, "language": language, "voice": voice });
    let work = async {
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "audio/wav, audio/mpeg, audio/flac, audio/ogg",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "text-to-speech request to {url} failed: {}",
                    crate::control::auth::error_chain(&e)
                )
            })?;
        let status = response.status();
        let hint = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(format_of_content_type)
            .map(str::to_owned);
        let mut stream = response.bytes_stream();
        let mut audio = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                format!(
                    "text-to-speech response from {url} broke off: {}",
                    crate::control::auth::error_chain(&e)
                )
            })?;
            if (audio.len() + chunk.len()) as u64 > max_bytes {
                return Err(format!(
                    "text-to-speech response from {url} is over {max_bytes} bytes"
                ));
            }
            audio.extend_from_slice(&chunk);
            if !status.is_success() && audio.len() >= ERROR_BODY {
                break;
            }
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&audio[..audio.len().min(ERROR_BODY)])
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>();
            return Err(format!(
                "text-to-speech engine {url} answered HTTP {status}: {}",
                text.trim()
            ));
        }
        Ok((audio, hint))
    };
    tokio::time::timeout(TIMEOUT, work).await.map_err(|_| {
        format!(
            "text-to-speech engine {url} did not answer within {} s",
            TIMEOUT.as_secs()
        )
    })?
}

/// The format a Content-Type names, as a file extension hint.
fn format_of_content_type(value: &str) -> Option<&'static str> {
    let mime = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(match mime.as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/ogg" | "application/ogg" => "ogg",
        _ => return None,
    })
}

/// A WAV file the engine wrote, removed when dropped.
#[derive(Debug)]
pub(crate) struct Output(PathBuf);

impl Output {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `argv` with `text` on its input; the WAV it wrote, or why not.
pub(crate) fn synthesize(argv: &[String], text: &str) -> Result<Output, String> {
    let out = Output(std::env::temp_dir().join(format!(
        "legatod-tts-{}-{:016x}.wav",
        std::process::id(),
        fastrand::u64(..)
    )));
    let out_str = out.0.to_string_lossy().into_owned();
    let Some((program, args)) = argv.split_first() else {
        return Err("no text-to-speech command".into());
    };
    let mut child = Command::new(program)
        .args(args.iter().map(|a| a.replace("{out}", &out_str)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading is reported by its status.
        let _ = stdin.write_all(text.as_bytes());
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {} s",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
    }
    if !status.success() {
        let reason = stderr.trim();
        return Err(if reason.is_empty() {
            format!("{program} failed ({status})")
        } else {
            format!("{program} failed: {reason}")
        });
    }
    if !out.0.is_file() {
        return Err(format!("{program} wrote no audio"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espeak_argv_maps_language_voice_and_ssml() {
        let engine = Engine {
            program: "/usr/bin/espeak-ng".into(),
            args: ["-v", "{voice}", "-w", "{out}", "--stdin"]
                .map(str::to_owned)
                .to_vec(),
            espeak: true,
        };
        assert_eq!(
            engine.argv("en-US", "f3", "hi"),
            [
                "/usr/bin/espeak-ng",
                "-v",
                "en-us+f3",
                "-w",
                "{out}",
                "--stdin"
            ]
        );
        assert_eq!(engine.argv("de", "", "<speak>x</speak>")[1], "-m");
        assert!(Engine::find(&["/no/such/tts".into()]).is_none());
    }

    #[test]
    fn a_failing_command_reports_its_stderr() {
        let argv = ["/bin/sh", "-c", "echo 'voice not found' >&2; exit 3"].map(str::to_owned);
        let err = synthesize(&argv, "hello").unwrap_err();
        assert!(err.contains("voice not found"), "{err}");
        let argv = ["/bin/sh", "-c", "cat > /dev/null"].map(str::to_owned);
        let err = synthesize(&argv, "hello").unwrap_err();
        assert!(err.contains("wrote no audio"), "{err}");
    }

    #[test]
    fn content_types_hint_formats() {
        assert_eq!(format_of_content_type("audio/mpeg"), Some("mp3"));
        assert_eq!(format_of_content_type("Audio/WAV; codecs=1"), Some("wav"));
        assert_eq!(format_of_content_type("text/html"), None);
    }
}

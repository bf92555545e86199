//! Where a recording goes: the file name from the template, a file that is
//! never an existing one, and the free-space floor.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The values a file-name template may use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameInputs<'a> {
    /// Replaces `{session}`.
    pub(crate) session: &'a str,
    /// Replaces `{leg}`.
    pub(crate) leg: &'a str,
    /// Replaces `{recording}`.
    pub(crate) recording: &'a str,
    /// Replaces `{start}` (as `20261207T160405Z`, UTC).
    pub(crate) start: SystemTime,
}

/// The file name (without extension) `template` gives for `inputs`, or why
/// it cannot be used: an unknown placeholder, an empty name, or a name
/// that would leave the recording directory (`/`, `..`, a NUL byte; checked
/// after expansion, so ids cannot smuggle them in).
pub(crate) fn expand(template: &str, inputs: &NameInputs<'_>) -> Result<String, String> {
    let mut name = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        name.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!(
                "unclosed placeholder in file name template {template:?}"
            ));
        };
        match &after[..close] {
            "session" => name.push_str(inputs.session),
            "leg" => name.push_str(inputs.leg),
            "recording" => name.push_str(inputs.recording),
            "start" => name.push_str(&utc_stamp(inputs.start)),
            other => {
                return Err(format!(
                    "unknown placeholder {{{other}}} in file name template (known: {{session}}, {{leg}}, {{recording}}, {{start}})"
                ));
            }
        }
        rest = &after[close + 1..];
    }
    name.push_str(rest);
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("file name {name:?} is not a file name"));
    }
    if name.contains('/') || name.contains('\0') || name.contains("..") {
        return Err(format!(
            "file name {name:?} would leave the recording directory ('/', '..' and NUL are not allowed)"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "file name is {} bytes, over {MAX_NAME_LEN}",
            name.len()
        ));
    }
    Ok(name)
}

/// Creates `dir/name.ext`, never opening an existing file: on a collision
/// it tries `name-1.ext`, `name-2.ext`, and so on.
pub(crate) fn create_unique(dir: &Path, name: &str, ext: &str) -> io::Result<(File, PathBuf)> {
    for n in 0..MAX_SUFFIX {
        let file_name = if n == 0 {
            format!("{name}.{ext}")
        } else {
            format!("{name}-{n}.{ext}")
        };
        let path = dir.join(file_name);
        match OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{name}.{ext} and {MAX_SUFFIX} numbered variants exist already"),
    ))
}

/// Bytes an unprivileged process may still write in the file system
/// holding `dir`.
pub(crate) fn available_space(dir: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// `time` in UTC as `YYYYMMDDTHHMMSSZ` (times before 1970 print as 1970).
pub(crate) fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counting in
/// 400-year eras (146 097 days each) from 0000-03-01 so leap days fall at
/// the end of each year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719 468 days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March ... 11 = February.
    let m = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * m + 2) / 5 + 1;
    let month = if m < 10 { m + 3 } else { m - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Longest file name (bytes, before the extension and suffix).
const MAX_NAME_LEN: usize = 200;
/// Numbered variants tried before giving up on a name.
const MAX_SUFFIX: u32 = 1000;

//! 16-bit PCM WAV files that stay valid while they grow.
//!
//! The 44-byte RIFF header goes out first with zero sizes; samples are
//! appended with plain writes (no userspace buffer beyond one writer turn)
//! and the RIFF and data sizes are rewritten in place (`write_all_at`, so
//! the append position never moves) at every checkpoint and at the end. A
//! process killed in between leaves a file whose header undercounts the
//! data by at most one checkpoint interval: players read it up to there,
//! and [`repair`] brings the header up to the file's length.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// Bytes before the samples in the files written here.
pub(crate) const HEADER_LEN: u64 = 44;
/// Largest data chunk: the RIFF size (data + 36) must fit in 32 bits.
const MAX_DATA: u64 = u32::MAX as u64 - 36;
/// Samples per write at most (8 KiB): an even count, so a piece never
/// splits a stereo frame.
const WRITE_SAMPLES: usize = 4096;

/// A WAV file being written.
#[derive(Debug)]
pub(crate) struct WavWriter {
    file: File,
    /// Sample bytes in the file.
    data: u64,
    /// Sample bytes the header on disk declares.
    declared: u64,
    /// Reused for the little-endian bytes of each write.
    bytes: Vec<u8>,
}

impl WavWriter {
    /// Writes the header (sizes 0) to the new, empty `file`.
    pub(crate) fn create(file: File, rate: u32, channels: u16) -> io::Result<Self> {
        // A plain write: the file position moves past the header, and the
        // samples follow it (the size updates use pwrite, which leaves the
        // position alone; O_APPEND would send them to the end on Linux).
        (&file).write_all(&header(rate, channels, 0))?;
        Ok(Self {
            file,
            data: 0,
            declared: 0,
            bytes: Vec::new(),
        })
    }

    /// Appends interleaved samples. On an error (a full disk, say) the file
    /// is cut back to the last whole write and its header updated, so it
    /// stays valid; nothing more should be written.
    pub(crate) fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        // In pieces of at most WRITE_SAMPLES: a full disk then keeps all
        // but the last piece, not all but the last turn's worth.
        for piece in samples.chunks(WRITE_SAMPLES) {
            let len = piece.len() as u64 * 2;
            if self.data + len > MAX_DATA {
                return Err(io::Error::other(
                    "the WAV size limit (4 GiB) is reached; the recording ends here",
                ));
            }
            self.bytes.clear();
            self.bytes
                .extend(piece.iter().flat_map(|s| s.to_le_bytes()));
            if let Err(e) = (&self.file).write_all(&self.bytes) {
                // A partial write: drop it so the data stays whole frames.
                let _ = self.file.set_len(HEADER_LEN + self.data);
                let _ = self.checkpoint();
                return Err(e);
            }
            self.data += len;
        }
        Ok(())
    }

    /// Rewrites the header's sizes to cover everything written so far.
    pub(crate) fn checkpoint(&mut self) -> io::Result<()> {
        if self.declared == self.data {
            return Ok(());
        }
        write_sizes(&self.file, self.data)?;
        self.declared = self.data;
        Ok(())
    }

    /// Final sizes, then data and metadata to disk. Returns the file's
    /// length.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        self.checkpoint()?;
        self.file.sync_all()?;
        Ok(HEADER_LEN + self.data)
    }

    /// Bytes in the file.
    pub(crate) fn len(&self) -> u64 {
        HEADER_LEN + self.data
    }
}

/// A canonical 16-bit PCM header for `data` sample bytes.
pub(crate) fn header(rate: u32, channels: u16, data: u32) -> [u8; HEADER_LEN as usize] {
    let block = channels * 2;
    let mut h = [0; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// Writes the RIFF and data sizes of a canonical header for `data` bytes.
fn write_sizes(file: &File, data: u64) -> io::Result<()> {
    // MAX_DATA keeps both in range.
    let data = u32::try_from(data).unwrap_or(u32::MAX);
    file.write_all_at(&data.saturating_add(36).to_le_bytes(), 4)?;
    file.write_all_at(&data.to_le_bytes(), 40)
}

/// What [`repair`] found in a WAV file.
#[derive(Debug, PartialEq)]
pub(crate) enum WavState {
    /// Not a RIFF/WAVE file, or not one this module can judge.
    Unknown,
    /// The header agrees with the file.
    Finalized,
    /// The header was fixed; the file holds this many seconds.
    Repaired(f64),
}

/// Brings the RIFF and data sizes of an unfinalized WAV (the data chunk
/// running to the end of the file, its size field behind) up to the file's
/// length, dropping a trailing partial sample frame. A file whose data
/// chunk is followed by further chunks, or whose sizes already agree, is
/// left alone; so is anything that does not parse.
pub(crate) fn repair(file: &mut File) -> io::Result<WavState> {
    let len = file.metadata()?.len();
    let mut head = [0u8; 4096];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    let head = &head[..got];
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(WavState::Unknown);
    }
    let riff = u64::from(le32(&head[4..8]));
    // Walk the chunks to `data`, noting the block size in `fmt `.
    let mut pos = 12usize;
    let mut block = None;
    let mut rate = None;
    let (data_off, declared) = loop {
        let Some(chunk) = head.get(pos..pos + 8) else {
            return Ok(WavState::Unknown);
        };
        let size = u64::from(le32(&chunk[4..8]));
        if &chunk[0..4] == b"data" {
            break ((pos + 8) as u64, size);
        }
        if &chunk[0..4] == b"fmt " {
            let Some(fmt) = head.get(pos + 8..pos + 24) else {
                return Ok(WavState::Unknown);
            };
            rate = Some(le32(&fmt[4..8]));
            block = Some(u64::from(u16::from_le_bytes([fmt[12], fmt[13]])));
        }
        pos = match usize::try_from(size)
            .ok()
            .and_then(|s| (pos + 8).checked_add(s + (s & 1)))
        {
            Some(next) => next,
            None => return Ok(WavState::Unknown),
        };
    };
    let (Some(block), Some(rate)) = (block, rate) else {
        return Ok(WavState::Unknown);
    };
    if block == 0 || rate == 0 || data_off > len {
        return Ok(WavState::Unknown);
    }
    let available = len - data_off;
    // A finalized file's RIFF chunk spans the whole file (chunks after the
    // data, as other tools write, included). An unfinalized one of ours
    // ends its RIFF chunk where the declared data ends, short of the file.
    if riff + 8 == len && declared <= available {
        return Ok(WavState::Finalized);
    }
    let data = (available - available % block).min(MAX_DATA - MAX_DATA % block);
    if data_off + data != len {
        file.set_len(data_off + data)?;
    }
    // `data` is at most MAX_DATA, so both fit.
    let data32 = data as u32;
    let riff32 = (data_off + data - 8).min(u64::from(u32::MAX)) as u32;
    file.write_all_at(&riff32.to_le_bytes(), 4)?;
    file.write_all_at(&data32.to_le_bytes(), data_off - 4)?;
    file.sync_all()?;
    Ok(WavState::Repaired(
        data as f64 / (block as f64 * f64::from(rate)),
    ))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

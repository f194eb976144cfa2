//! IVR prompts, loaded once at start-up and shared read-only by every call.
//!
//! Why pre-encode: a 9090 hotline plays the same handful of announcements to every caller.
//! Encoding each prompt to both PCMU and PCMA once at load time means a call only slices an
//! `Arc<[u8]>` into 160-byte frames — no per-call decoding, resampling or allocation — and a
//! bad prompt file fails the service at start-up instead of in the middle of a call.
//!
//! Why so strict about the format: resampling or down-mixing at load time would hide a wrong
//! studio export (and degrade it). Prompts must be 8000 Hz, mono, 16-bit signed PCM WAV; the
//! error names the file and says what is wrong so the fix is one `sox` command away:
//! `sox in.wav -r 8000 -c 1 -b 16 -e signed-integer out.wav`.
//! WAV parsing (including WAVE_FORMAT_EXTENSIBLE and `fact`/`LIST` chunks that sox writes) is
//! done by `hound`.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::codec::{Codec, SAMPLE_RATE, SAMPLES_PER_FRAME};

const EXPECTED: &str = "expected 8000 Hz mono 16-bit PCM";

/// Why a prompt directory could not be loaded. Every variant names the offending path.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error("{}: contains no audio samples", path.display())]
    Empty { path: PathBuf },
    #[error("{}: no *.wav prompts found", dir.display())]
    NoPrompts { dir: PathBuf },
}

/// One announcement, G.711-encoded for both codecs and padded to whole 20 ms frames.
pub struct Prompt {
    /// Name used by the IVR flow (the file stem: `welcome.wav` → `welcome`).
    pub id: String,
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
}

impl Prompt {
    /// Builds a prompt from 8 kHz linear PCM (tests, synthetic tones). The last partial frame
    /// is padded with silence so every frame is exactly 160 samples.
    pub fn from_pcm(id: impl Into<String>, pcm: &[i16]) -> Prompt {
        let frames = pcm.len().div_ceil(SAMPLES_PER_FRAME);
        let encode = |codec: Codec| -> Arc<[u8]> {
            let mut out = Vec::with_capacity(frames * SAMPLES_PER_FRAME);
            codec.encode(pcm, &mut out);
            out.resize(frames * SAMPLES_PER_FRAME, codec.silence_byte());
            out.into()
        };
        Prompt {
            id: id.into(),
            pcmu: encode(Codec::Pcmu),
            pcma: encode(Codec::Pcma),
        }
    }

    /// The whole prompt in `codec`, a multiple of 160 bytes.
    pub fn encoded(&self, codec: Codec) -> &Arc<[u8]> {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// Frame `index` (160 bytes = 20 ms) in `codec`, or `None` past the end.
    pub fn frame(&self, codec: Codec, index: usize) -> Option<&[u8]> {
        let start = index.checked_mul(SAMPLES_PER_FRAME)?;
        self.encoded(codec)
            .get(start..start.checked_add(SAMPLES_PER_FRAME)?)
    }

    /// Number of 20 ms frames, the last one padded with silence.
    pub fn frames(&self) -> usize {
        self.pcmu.len() / SAMPLES_PER_FRAME
    }

    /// Playing time as heard by the caller: whole frames, padding included.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.frames() as u64 * 20)
    }
}

impl std::fmt::Debug for Prompt {
    // Not derived: dumping kilobytes of G.711 into logs helps nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt")
            .field("id", &self.id)
            .field("frames", &self.frames())
            .finish()
    }
}

/// All prompts of the service, keyed by id. Cloning is an `Arc` bump, so each call can hold
/// its own handle.
#[derive(Clone, Debug, Default)]
pub struct PromptCache {
    inner: Arc<HashMap<String, Arc<Prompt>>>,
}

impl PromptCache {
    /// An empty cache (tests, synthetic prompts).
    pub fn new() -> PromptCache {
        PromptCache::default()
    }

    /// Loads every `*.wav` directly in `dir` (not recursive). Any unusable file fails the
    /// whole load: a half-working IVR is worse than one that refuses to start.
    pub fn load_dir(dir: &Path) -> Result<PromptCache, PromptError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PromptError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let is_wav = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            if is_wav && path.is_file() {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(PromptError::NoPrompts {
                dir: dir.to_path_buf(),
            });
        }
        files.sort();
        let mut map = HashMap::with_capacity(files.len());
        for path in files {
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                return Err(PromptError::Format {
                    path,
                    detail: "file name is not valid UTF-8".into(),
                });
            };
            let id = id.to_owned();
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let pcm = decode_wav(&path, &bytes)?;
            map.insert(id.clone(), Arc::new(Prompt::from_pcm(id, &pcm)));
        }
        Ok(PromptCache {
            inner: Arc::new(map),
        })
    }

    /// Same as [`Prompt::from_pcm`], for callers that only import the cache.
    pub fn from_pcm(id: impl Into<String>, pcm: &[i16]) -> Prompt {
        Prompt::from_pcm(id, pcm)
    }

    /// Adds or replaces a prompt (tests, synthetic tones). Copy-on-write if the cache is shared.
    pub fn insert(&mut self, prompt: Prompt) {
        Arc::make_mut(&mut self.inner).insert(prompt.id.clone(), Arc::new(prompt));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Prompt>> {
        self.inner.get(id).cloned()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.inner.contains_key(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.inner.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Decodes an 8000 Hz mono 16-bit PCM WAV, rejecting anything else with a precise reason.
fn decode_wav(path: &Path, bytes: &[u8]) -> Result<Vec<i16>, PromptError> {
    let format = |detail: String| PromptError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let mut reader = match hound::WavReader::new(Cursor::new(bytes)) {
        Ok(r) => r,
        Err(hound::Error::Unsupported) => {
            let what = match wav_format_tag(bytes) {
                Some(6) => "A-law (WAVE format 6)".to_owned(),
                Some(7) => "µ-law (WAVE format 7)".to_owned(),
                Some(tag) => format!("WAVE format 0x{tag:04x}"),
                None => "unsupported WAVE format".to_owned(),
            };
            return Err(format(format!("{what} is not supported, {EXPECTED}")));
        }
        Err(e) => return Err(format(format!("not a usable WAV file ({e}), {EXPECTED}"))),
    };
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE {
        return Err(format(format!(
            "sample rate {} Hz, {EXPECTED}",
            spec.sample_rate
        )));
    }
    if spec.channels != 1 {
        return Err(format(format!("{} channels, {EXPECTED}", spec.channels)));
    }
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        let kind = match spec.sample_format {
            hound::SampleFormat::Int => "integer",
            hound::SampleFormat::Float => "float",
        };
        return Err(format(format!(
            "{}-bit {kind} samples, {EXPECTED}",
            spec.bits_per_sample
        )));
    }
    let pcm = reader
        .samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| format(format!("truncated or corrupt sample data ({e})")))?;
    if pcm.is_empty() {
        return Err(PromptError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(pcm)
}

/// The `wFormatTag` of the `fmt ` chunk, to name formats hound refuses (µ-law, A-law, ADPCM).
/// Hand-written because hound only reports them as "unsupported".
fn wav_format_tag(bytes: &[u8]) -> Option<u16> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12usize;
    while let Some(header) = bytes.get(pos..pos.checked_add(8)?) {
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[0..4] == b"fmt " {
            let tag = bytes.get(pos + 8..pos + 10)?;
            return Some(u16::from_le_bytes([tag[0], tag[1]]));
        }
        // Chunks are padded to an even length.
        pos = pos.checked_add(8)?.checked_add(len)?.checked_add(len & 1)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh, empty directory under the system temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tongdai-prompt-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, samples: &[i32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn good_file_loads_and_is_encoded_for_both_codecs() {
        let dir = temp_dir("good");
        let mut samples = vec![0i32; 8000 + 10];
        samples[0] = i32::from(i16::MAX);
        write_wav(&dir.join("welcome.wav"), 8000, 1, 16, &samples);
        write_wav(&dir.join("goodbye.WAV"), 8000, 1, 16, &[100; 160]);
        std::fs::write(dir.join("notes.txt"), b"not a prompt").unwrap();

        let cache = PromptCache::load_dir(&dir).unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.contains("welcome") && cache.contains("goodbye"));
        let mut ids: Vec<&str> = cache.ids().collect();
        ids.sort();
        assert_eq!(ids, vec!["goodbye", "welcome"]);

        let p = cache.get("welcome").unwrap();
        assert_eq!(p.id, "welcome");
        assert_eq!(p.frames(), 51, "8010 samples = 50 frames + 1 padded frame");
        assert_eq!(p.duration(), Duration::from_millis(1020));
        assert_eq!(p.encoded(Codec::Pcmu).len(), 51 * 160);
        assert_eq!(p.encoded(Codec::Pcmu)[0], 0x80);
        assert_eq!(p.encoded(Codec::Pcma)[0], 0xAA);
        assert_eq!(p.encoded(Codec::Pcmu)[1], 0xFF);
        assert_eq!(p.encoded(Codec::Pcma)[1], 0xD5);
        // Padding of the last frame is silence.
        assert_eq!(*p.encoded(Codec::Pcma).last().unwrap(), 0xD5);
        assert_eq!(p.frame(Codec::Pcmu, 50).unwrap().len(), 160);
        assert!(p.frame(Codec::Pcmu, 51).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn load_err(dir: &Path) -> String {
        PromptCache::load_dir(dir).unwrap_err().to_string()
    }

    #[test]
    fn wrong_sample_rate_is_rejected_with_file_name() {
        let dir = temp_dir("rate");
        write_wav(&dir.join("welcome.wav"), 22050, 1, 16, &[0; 100]);
        let err = load_err(&dir);
        assert!(err.contains("welcome.wav"), "{err}");
        assert!(
            err.ends_with("welcome.wav: sample rate 22050 Hz, expected 8000 Hz mono 16-bit PCM"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stereo_and_8_bit_are_rejected() {
        let dir = temp_dir("stereo");
        write_wav(&dir.join("menu.wav"), 8000, 2, 16, &[0; 100]);
        let err = load_err(&dir);
        assert!(err.contains("menu.wav: 2 channels"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);

        let dir = temp_dir("8bit");
        write_wav(&dir.join("menu.wav"), 8000, 1, 8, &[0; 100]);
        let err = load_err(&dir);
        assert!(err.contains("menu.wav: 8-bit integer samples"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ulaw_wav_is_rejected_with_a_clear_message() {
        // Minimal 8 kHz µ-law WAV: RIFF, fmt (format 7, 18 bytes), fact, data.
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(4u32 + 26 + 12 + 8 + 4).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&18u32.to_le_bytes());
        b.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(b"fact");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&[0xFF; 4]);
        let dir = temp_dir("ulaw");
        std::fs::write(dir.join("hold.wav"), &b).unwrap();
        let err = load_err(&dir);
        assert!(
            err.contains("hold.wav: µ-law (WAVE format 7) is not supported"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_empty_file_and_empty_dir_are_rejected() {
        let dir = temp_dir("garbage");
        std::fs::write(dir.join("broken.wav"), b"this is not a wav file at all").unwrap();
        let err = load_err(&dir);
        assert!(err.contains("broken.wav: not a usable WAV file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);

        let dir = temp_dir("zero");
        write_wav(&dir.join("silent.wav"), 8000, 1, 16, &[]);
        let err = PromptCache::load_dir(&dir).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("silent.wav"));
        let _ = std::fs::remove_dir_all(&dir);

        let dir = temp_dir("empty");
        let err = PromptCache::load_dir(&dir).unwrap_err();
        assert!(matches!(err, PromptError::NoPrompts { .. }), "{err}");
        assert!(err.to_string().contains("no *.wav prompts"));
        let _ = std::fs::remove_dir_all(&dir);

        let missing = std::env::temp_dir().join("tongdai-prompt-does-not-exist-xyz");
        let err = PromptCache::load_dir(&missing).unwrap_err();
        assert!(matches!(err, PromptError::Io { .. }));
        assert!(
            err.to_string()
                .contains("tongdai-prompt-does-not-exist-xyz")
        );
    }

    #[test]
    fn synthetic_prompts_and_cheap_clones() {
        let mut cache = PromptCache::new();
        assert!(cache.is_empty());
        cache.insert(PromptCache::from_pcm("tone", &[1000; 320]));
        let shared = cache.clone();
        cache.insert(Prompt::from_pcm("beep", &[0; 10]));
        assert_eq!(
            shared.len(),
            1,
            "copy-on-write keeps existing handles unchanged"
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("tone").unwrap().frames(), 2);
        assert_eq!(cache.get("beep").unwrap().frames(), 1);
        assert!(cache.get("nope").is_none());
    }
}

//! Which instruction set the kernels run on. The CPU is probed once; the choice is the best path
//! it supports unless `LOGITDIV_SIMD` or [`force`] says otherwise, and it lives in one atomic so
//! every thread sees the same path. Asking for a path the CPU lacks is an error, never a crash.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use crate::error::{bad_argument, Error};

/// The environment variable that picks a path: `scalar`, `avx2`, `avx512`, `neon`, or `auto`.
pub const ENV_VAR: &str = "LOGITDIV_SIMD";

/// An instruction-set path a kernel can be instantiated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The target's baseline instructions (SSE2, 128-bit, on x86-64), no fused multiply-add;
    /// the reference path, available everywhere and giving the same bits on every platform.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (256-bit vectors).
    Avx2,
    /// x86-64 with AVX-512 F, BW, DQ and VL (512-bit vectors).
    Avx512,
    /// aarch64 Advanced SIMD (128-bit vectors) with fused multiply-add.
    Neon,
}

impl Isa {
    /// Every path, in the order [`available`] lists them.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512];

    /// The name `LOGITDIV_SIMD` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// The CPU features the path needs (as `is_x86_feature_detected!` / `is_aarch64_feature_detected!`
    /// name them).
    pub fn required_features(self) -> &'static [&'static str] {
        match self {
            Isa::Scalar => &[],
            Isa::Avx2 => &["avx2", "fma", "f16c"],
            Isa::Avx512 => &["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"],
            Isa::Neon => &["neon"],
        }
    }

    /// Parses a `LOGITDIV_SIMD` value (case-insensitive); `""` and `"auto"` mean "the best
    /// detected path" and give `None`.
    pub fn parse(value: &str) -> Result<Option<Isa>, Error> {
        let v = value.trim().to_ascii_lowercase();
        if v.is_empty() || v == "auto" {
            return Ok(None);
        }
        Isa::ALL.into_iter().find(|isa| isa.name() == v).map(Some).ok_or_else(|| {
            bad_argument(format!("{ENV_VAR} must be one of 'auto', 'scalar', 'avx2', 'avx512', 'neon'; got {value:?}"))
        })
    }

    /// Whether this CPU (and this build) can run the path.
    pub fn is_available(self) -> bool {
        detected() & bit(self) != 0
    }

    /// The required features this CPU lacks (empty when the path is available, or when the path
    /// is for another architecture or was left out of this build; see [`Isa::why_unavailable`]).
    fn missing_features(self) -> Vec<&'static str> {
        self.required_features().iter().copied().filter(|f| !has_feature(f)).collect()
    }

    /// Why the path cannot run here, in words; `None` when it can.
    pub fn why_unavailable(self) -> Option<String> {
        if self.is_available() {
            return None;
        }
        let arch_ok = match self {
            Isa::Scalar => true,
            Isa::Avx2 => cfg!(target_arch = "x86_64"),
            Isa::Avx512 => cfg!(all(target_arch = "x86_64", logitdiv_avx512)),
            Isa::Neon => cfg!(target_arch = "aarch64"),
        };
        Some(if !arch_ok {
            format!("the {self} path is not built for this target ({})", std::env::consts::ARCH)
        } else {
            format!("this CPU lacks {} needed by the {self} path", self.missing_features().join(", "))
        })
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn bit(isa: Isa) -> u8 {
    1 << isa as u8
}

/// Asks the CPU (through std's cached detection) for one feature by name.
fn has_feature(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match name {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            _ => false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        match name {
            "neon" => std::arch::is_aarch64_feature_detected!("neon"),
            _ => false,
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = name;
        false
    }
}

/// The paths this CPU and build support, as a bit set; probed once.
fn detected() -> u8 {
    static DETECTED: OnceLock<u8> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        let built = |isa: Isa| match isa {
            Isa::Scalar => true,
            Isa::Avx2 => cfg!(target_arch = "x86_64"),
            Isa::Avx512 => cfg!(all(target_arch = "x86_64", logitdiv_avx512)),
            Isa::Neon => cfg!(target_arch = "aarch64"),
        };
        Isa::ALL
            .into_iter()
            .filter(|&isa| built(isa) && isa.required_features().iter().all(|f| has_feature(f)))
            .fold(0, |set, isa| set | bit(isa))
    })
}

/// The paths this CPU supports, slowest first; always starts with [`Isa::Scalar`].
pub fn available() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|isa| isa.is_available()).collect()
}

/// The fastest available path.
pub fn best() -> Isa {
    available().last().copied().unwrap_or(Isa::Scalar)
}

/// 0 = not chosen yet, otherwise 1 + the `Isa` discriminant.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

fn encode(isa: Isa) -> u8 {
    isa as u8 + 1
}

fn decode(v: u8) -> Option<Isa> {
    Isa::ALL.into_iter().find(|&isa| encode(isa) == v)
}

/// The path `LOGITDIV_SIMD` asks for: `Ok(None)` when unset or `auto`, an error when it names an
/// unknown path or one this CPU lacks.
fn from_env() -> Result<Option<Isa>, Error> {
    from_setting(std::env::var(ENV_VAR).ok().as_deref())
}

/// The path a `LOGITDIV_SIMD` value (`None`: unset) asks for, checked against this CPU.
fn from_setting(value: Option<&str>) -> Result<Option<Isa>, Error> {
    let Some(value) = value else { return Ok(None) };
    let Some(isa) = Isa::parse(value)? else { return Ok(None) };
    match isa.why_unavailable() {
        None => Ok(Some(isa)),
        Some(why) => Err(bad_argument(format!("{ENV_VAR}={value}: {why}; available: {}", names(&available())))),
    }
}

fn names(isas: &[Isa]) -> String {
    isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}

/// The path kernels run on now. On first use it is `LOGITDIV_SIMD`'s choice when that is valid and
/// the best available path otherwise (call [`init_from_env`] to see the error of an invalid
/// setting). Always an available path.
#[inline]
pub fn active() -> Isa {
    match decode(ACTIVE.load(Ordering::Relaxed)) {
        Some(isa) => isa,
        None => {
            let isa = from_env().ok().flatten().unwrap_or_else(best);
            // A concurrent `force` wins over the lazy default.
            match ACTIVE.compare_exchange(0, encode(isa), Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => isa,
                Err(current) => decode(current).unwrap_or(isa),
            }
        }
    }
}

/// Makes every later kernel call run on `isa` (`None`: back to the best available path, ignoring
/// `LOGITDIV_SIMD`). A path this CPU lacks is refused with an error naming the missing features,
/// and the active path is left as it was.
pub fn force(isa: Option<Isa>) -> Result<(), Error> {
    let isa = match isa {
        None => best(),
        Some(isa) => {
            check(isa)?;
            isa
        }
    };
    ACTIVE.store(encode(isa), Ordering::Relaxed);
    Ok(())
}

/// `Ok` when `isa` can run here, otherwise the error saying why and what can.
pub(crate) fn check(isa: Isa) -> Result<(), Error> {
    match isa.why_unavailable() {
        None => Ok(()),
        Some(why) => {
            Err(bad_argument(format!("cannot use the {isa} SIMD path: {why}; available: {}", names(&available()))))
        }
    }
}

/// Applies `LOGITDIV_SIMD` now and returns the active path, or the error an invalid setting
/// makes (unknown name, or a path this CPU lacks; the active path is then the best available).
/// Bindings call this at import so that a bad setting is reported instead of silently ignored.
pub fn init_from_env() -> Result<Isa, Error> {
    match from_env() {
        Ok(choice) => {
            force(choice)?;
            Ok(active())
        }
        Err(e) => {
            force(None)?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_and_auto() {
        assert_eq!(Isa::parse("AVX2 ").unwrap(), Some(Isa::Avx2));
        assert_eq!(Isa::parse("scalar").unwrap(), Some(Isa::Scalar));
        assert_eq!(Isa::parse("").unwrap(), None);
        assert_eq!(Isa::parse("auto").unwrap(), None);
        let err = Isa::parse("sse4").unwrap_err().to_string();
        assert!(err.contains("LOGITDIV_SIMD") && err.contains("\"sse4\""), "{err}");
    }

    #[test]
    fn the_environment_setting_is_checked() {
        assert_eq!(from_setting(None).unwrap(), None);
        assert_eq!(from_setting(Some("auto")).unwrap(), None);
        assert_eq!(from_setting(Some("Scalar")).unwrap(), Some(Isa::Scalar));
        assert!(from_setting(Some("avx3")).unwrap_err().to_string().contains("must be one of"));
        if let Some(isa) = Isa::ALL.into_iter().find(|i| !i.is_available()) {
            let err = from_setting(Some(isa.name())).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("LOGITDIV_SIMD={}: ", isa.name())) && err.contains("available: scalar"),
                "{err}"
            );
        }
    }

    #[test]
    fn scalar_is_always_available_and_first() {
        let a = available();
        assert_eq!(a[0], Isa::Scalar);
        assert!(a.contains(&best()));
        assert!(Isa::Scalar.why_unavailable().is_none());
    }

    #[test]
    fn forcing_a_missing_path_is_an_error_and_changes_nothing() {
        let before = active();
        let missing = Isa::ALL.into_iter().find(|i| !i.is_available());
        if let Some(isa) = missing {
            let err = force(Some(isa)).unwrap_err().to_string();
            assert!(err.contains(isa.name()) && err.contains("available: scalar"), "{err}");
            assert_eq!(active(), before);
        }
        // Every available path can be forced, and None goes back to the best.
        for isa in available() {
            force(Some(isa)).unwrap();
            assert_eq!(active(), isa);
        }
        force(None).unwrap();
        assert_eq!(active(), best());
    }
}

//! Unpacks `tests/data/` (the repository's copy of the third-party corpus and geo data, see
//! `tests/data/README.md`) into `OUT_DIR`, so tests read plain files without any decompression
//! of their own: `corpus/mail.tar.zst` → `corpus/mail/…`, `corpus/sflow.tar.zst` →
//! `corpus/sflow/…`, `geo/*.mmdb.zst` → `geo/*.mmdb`, other files copied as they are.

use std::fs;
use std::io;
use std::path::Path;

fn main() -> io::Result<()> {
    // Read at run time, not `env!`: a build script compiled in another checkout that shares
    // this target directory would otherwise unpack that checkout's (or a removed one's) data.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let src = Path::new(&manifest).join("../../tests/data");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("data");
    println!("cargo:rerun-if-changed={}", src.display());
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    unpack_dir(&src, &out)
}

/// Mirror `src` into `dst`, unpacking `.tar.zst` archives and decompressing `.zst` files.
fn unpack_dir(src: &Path, dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    let mut entries = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        println!("cargo:rerun-if-changed={}", path.display());
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            unpack_dir(&path, &dst.join(&name))?;
        } else if name.ends_with(".tar.zst") {
            tar::Archive::new(&zstd_decoded(&path)?[..]).unpack(dst)?;
        } else if let Some(stem) = name.strip_suffix(".zst").filter(|s| s.ends_with(".mmdb")) {
            fs::write(dst.join(stem), zstd_decoded(&path)?)?;
        } else {
            fs::copy(&path, dst.join(&name))?;
        }
    }
    Ok(())
}

/// A `.zst` file's contents: every frame in it, one after another (as `zstd -d` writes them).
fn zstd_decoded(path: &Path) -> io::Result<Vec<u8>> {
    let packed = fs::read(path)?;
    let mut rest = &packed[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut rest).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        io::Read::read_to_end(&mut frame, &mut out)?;
    }
    Ok(out)
}

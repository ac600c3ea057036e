//! The seed corpora: `write_all(fixtures, root)` fills `<root>/nifti`, `<root>/nrrd`, `<root>/dicom` and
//! `<root>/volume_abi`. Reader seeds are the real fixtures' headers (every key, extension and geometry as
//! the scanner or Slicer wrote them) over a small block of their real voxels, so the fuzzer starts deep in
//! the readers instead of at the magic bytes, and each execution stays cheap.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// The block cut from each fixture.
const BLOCK: [usize; 3] = [6, 5, 3];

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut z = GzEncoder::new(Vec::new(), Compression::default());
    z.write_all(b).unwrap();
    z.finish().unwrap()
}

/// The centre block of a volume held as `elem`-byte voxels, i fastest.
fn crop(data: &[u8], dims: [usize; 3], elem: usize) -> ([usize; 3], Vec<u8>) {
    let n = [0, 1, 2].map(|a| BLOCK[a].min(dims[a]));
    let o = [0, 1, 2].map(|a| (dims[a] - n[a]) / 2);
    let mut out = Vec::with_capacity(n.iter().product::<usize>() * elem);
    for k in 0..n[2] {
        for j in 0..n[1] {
            let row = (((o[2] + k) * dims[1] + o[1] + j) * dims[0] + o[0]) * elem;
            out.extend_from_slice(&data[row..row + n[0] * elem]);
        }
    }
    (n, out)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A NIfTI-1 file cut down to a block: its header with new dims, its extensions, the block's voxels.
fn nifti_seed(file: &[u8]) -> Vec<u8> {
    let i16_at = |o: usize| i16::from_le_bytes([file[o], file[o + 1]]);
    let dims = [1, 2, 3].map(|a| i16_at(40 + 2 * a) as usize);
    let elem = (i16_at(72) / 8) as usize;
    let offset = f32::from_le_bytes(file[108..112].try_into().unwrap()) as usize;
    let (n, block) = crop(&file[offset..], dims, elem);
    let mut out = file[..offset].to_vec();
    for a in 0..3 {
        out[42 + 2 * a..44 + 2 * a].copy_from_slice(&(n[a] as i16).to_le_bytes());
    }
    out.extend_from_slice(&block);
    out
}

fn nifti_seeds(fixtures: &Path, dir: &Path) {
    for name in ["example_ct_sm.nii.gz", "example_seg.nii.gz"] {
        let mut file = Vec::new();
        MultiGzDecoder::new(std::fs::File::open(fixtures.join(name)).unwrap()).read_to_end(&mut file).unwrap();
        let seed = nifti_seed(&file);
        let stem = name.trim_end_matches(".nii.gz");
        // The first byte is the target's mode: 0 as is, 1 gzip-wrapped by the target.
        write(dir, &format!("{stem}-raw"), &[&[0u8][..], &seed].concat());
        write(dir, &format!("{stem}-wrapped"), &[&[1u8][..], &seed].concat());
        write(dir, &format!("{stem}-gz"), &[&[0u8][..], &gzip(&seed)].concat());
    }
}

/// A NRRD file cut down to a block: every header line as written, `sizes` and `endian` set for the block,
/// the block's voxels raw and gzip.
fn nrrd_seeds(fixtures: &Path, dir: &Path) {
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".nrrd") {
            continue;
        }
        let v = voxprompt::io::nrrd::read(&path).unwrap();
        let (n, block) = crop(&v.data, v.dims, v.dtype.size());
        let text = std::fs::read(&path).unwrap();
        let end = text.windows(2).position(|w| w == b"\n\n").unwrap();
        let header = String::from_utf8_lossy(&text[..end]).to_string();
        for (encoding, payload) in [("raw", block.clone()), ("gzip", gzip(&block))] {
            let mut h = String::new();
            for line in header.lines() {
                let key = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
                match key.as_str() {
                    "sizes" => h.push_str(&format!("sizes: {} {} {}\n", n[0], n[1], n[2])),
                    "encoding" => h.push_str(&format!("encoding: {encoding}\n")),
                    "endian" => h.push_str("endian: little\n"),
                    _ => h.push_str(&format!("{line}\n")),
                }
            }
            h.push('\n');
            let stem = name.trim_end_matches(".nrrd");
            write(dir, &format!("{stem}-{encoding}"), &[h.as_bytes(), &payload].concat());
        }
    }
}

/// Valid host calls, in the byte layout `abi::volume` reads: a descriptor, a seed mask, a box, outputs.
fn abi_seeds(dir: &Path) {
    let le16 = |v: u16| v.to_le_bytes().to_vec();
    let stride = |v: i32| [vec![9u8], v.to_le_bytes().to_vec()].concat();
    // (dtype, element size, dims, negative i stride)
    let cases = [
        (4u8, 2usize, [8u16, 6, 3], false),
        (7, 4, [5, 5, 2], false),
        (1, 1, [16, 4, 2], true),
        (8, 8, [3, 3, 3], false),
    ];
    for (c, (dtype, elem, d, flip)) in cases.into_iter().enumerate() {
        let [w, h, n] = d.map(usize::from);
        let len = w * h * n * elem;
        let (s0, off) = if flip { (-(elem as i32), (w - 1) * elem) } else { (elem as i32, 0) };
        let mut b = vec![2u8, dtype];
        b.extend(le16(len as u16));
        b.extend(le16(off as u16));
        for v in d {
            b.extend(le16(v));
        }
        b.extend(stride(s0));
        b.extend(stride((w * elem) as i32));
        b.extend(stride((w * h * elem) as i32));
        b.push(0); // geometry: 1 × 1 × 2.5 mm, identity axes
        b.push(2); // MR mapping (percentiles)
        b.extend([0u8; 16]);
        // seed mask label 1 over the same dims, contiguous
        b.extend([1u8, 0, 9]);
        b.extend(le16((w * h * n) as u16));
        b.extend(stride(1));
        b.extend(stride(w as i32));
        b.extend(stride((w * h) as i32));
        // box 1,1,0 .. w-2,h-2,n-1
        for v in [1, 1, 0, w - 2, h - 2, n - 1] {
            b.extend(le16(v as u16));
        }
        // mask out, contiguous; confidence out, contiguous floats
        b.push(9);
        b.extend(le16((w * h * n) as u16));
        b.extend(stride(1));
        b.extend(stride(w as i32));
        b.extend(stride((w * h) as i32));
        b.push(1);
        b.push(9);
        b.extend(le16((w * h * n * 4) as u16));
        b.extend(stride(4));
        b.extend(stride((w * 4) as i32));
        b.extend(stride((w * h * 4) as i32));
        write(dir, &format!("valid-{c}"), &b);
    }
}

/// Writes every target's seeds under `root`; returns (target, number of seeds).
/// DICOM seeds from TotalSegmentator case B (`data/`, set up by `make setup` beside the fixtures): one slice
/// as it is (JPEG 2000 lossless, 157 kB), and its real header over a small native block (Explicit VR Little
/// Endian, 6 × 5 pixels), so most executions stay in the parser and the checks.
fn dicom_seeds(fixtures: &Path, dir: &Path) {
    use dicom_dictionary_std::tags;
    let series = fixtures.join("../../../data/totalsegmentator/example_ct_dicom");
    let Ok(entries) = std::fs::read_dir(&series) else { return };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    let Some(first) = files.first() else { return };
    write(dir, "case_b_j2k.dcm", &std::fs::read(first).unwrap());
    let mut obj = dicom_object::open_file(first).unwrap();
    let (columns, rows) = (BLOCK[0] as u16, BLOCK[1] as u16);
    let pixels: Vec<u8> = (0..columns * rows).flat_map(|v| (v * 37 % 2000).to_le_bytes()).collect();
    obj.put(dicom_object::mem::InMemElement::new(
        tags::ROWS,
        dicom_core::VR::US,
        dicom_core::PrimitiveValue::from(rows),
    ));
    obj.put(dicom_object::mem::InMemElement::new(
        tags::COLUMNS,
        dicom_core::VR::US,
        dicom_core::PrimitiveValue::from(columns),
    ));
    obj.put(dicom_object::mem::InMemElement::new(
        tags::PIXEL_DATA,
        dicom_core::VR::OW,
        dicom_core::PrimitiveValue::from(pixels),
    ));
    obj.meta_mut().transfer_syntax = "1.2.840.10008.1.2.1".into();
    obj.meta_mut().update_information_group_length();
    let mut out = Vec::new();
    obj.write_all(&mut out).unwrap();
    write(dir, "case_b_native_6x5.dcm", &out);
}

pub fn write_all(fixtures: &Path, root: &Path) -> Vec<(&'static str, usize)> {
    ["nifti", "nrrd", "dicom", "volume_abi"]
        .into_iter()
        .map(|target| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            match target {
                "nifti" => nifti_seeds(fixtures, &dir),
                "nrrd" => nrrd_seeds(fixtures, &dir),
                "dicom" => dicom_seeds(fixtures, &dir),
                _ => abi_seeds(&dir),
            }
            (target, std::fs::read_dir(&dir).unwrap().count())
        })
        .collect()
}

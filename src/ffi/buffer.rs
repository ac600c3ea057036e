//! Caller-owned strided buffers, for inputs (seed masks) and outputs (label and confidence maps) alike:
//! one bounds check, then reads and writes through the checked byte strides.

use super::error::set_last_error;
use super::result::vxp_result;

/// A layout of `elem`-byte values over `dims`, proved to lie inside the caller's buffer: voxel (i, j, k) at
/// byte `i*strides[0] + j*strides[1] + k*strides[2]`.
pub(crate) struct Strided {
    dims: [usize; 3],
    strides: [usize; 3],
}

impl Strided {
    /// Checks a layout against a buffer of `len` bytes. Strides must be non-negative and at least one
    /// element along every axis longer than 1 (otherwise voxels would share bytes).
    pub(crate) fn check(dims: [usize; 3], strides: [i64; 3], elem: usize, len: usize) -> Result<Strided, vxp_result> {
        let mut s = [0usize; 3];
        let mut last = 0u128;
        for a in 0..3 {
            if strides[a] < elem as i64 && dims[a] > 1 {
                set_last_error(format!(
                    "stride {} of axis {a} is below one element ({elem} bytes) or negative",
                    strides[a]
                ));
                return Err(vxp_result::InvalidArgument);
            }
            s[a] = strides[a].max(0) as usize;
            last += s[a] as u128 * (dims[a] as u128).saturating_sub(1);
        }
        if last + elem as u128 > len as u128 {
            set_last_error(format!(
                "buffer of {len} bytes is too small for dims {dims:?} with byte strides {strides:?} ({} bytes needed)",
                last + elem as u128
            ));
            return Err(vxp_result::BufferTooSmall);
        }
        Ok(Strided { dims, strides: s })
    }

    fn offset(&self, i: usize, j: usize, k: usize) -> usize {
        i * self.strides[0] + j * self.strides[1] + k * self.strides[2]
    }

    /// Copies every value out of the buffer, i fastest.
    ///
    /// # Safety
    /// `ptr` is the start of the buffer this layout was checked against, readable for its length.
    pub(crate) unsafe fn read<T: Copy>(&self, ptr: *const T) -> Vec<T> {
        let [w, h, d] = self.dims;
        let base = ptr.cast::<u8>();
        let mut out = Vec::with_capacity(w * h * d);
        for k in 0..d {
            for j in 0..h {
                for i in 0..w {
                    // SAFETY: `check` proved the offset lies inside the buffer; hosts' strides may be unaligned.
                    out.push(unsafe { base.add(self.offset(i, j, k)).cast::<T>().read_unaligned() });
                }
            }
        }
        out
    }

    /// Writes `f(v)` for every `v` of `src` (i fastest, over the checked dims) into the buffer.
    ///
    /// # Safety
    /// `ptr` is the start of the buffer this layout was checked against, writable for its length.
    pub(crate) unsafe fn write<T: Copy, S: Copy>(&self, ptr: *mut T, src: &[S], f: impl Fn(S) -> T) {
        let [w, h, d] = self.dims;
        let base = ptr.cast::<u8>();
        for k in 0..d {
            for j in 0..h {
                let row = &src[(k * h + j) * w..(k * h + j + 1) * w];
                for (i, &v) in row.iter().enumerate() {
                    // SAFETY: `check` proved the offset lies inside the buffer; hosts' strides may be unaligned.
                    unsafe { base.add(self.offset(i, j, k)).cast::<T>().write_unaligned(f(v)) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_layout_reads_and_writes_through_its_strides() {
        // dims 2×2×1 in a 3-byte-pitch buffer: rows padded by one byte.
        let l = Strided::check([2, 2, 1], [1, 3, 6], 1, 5).unwrap();
        let mut buf = [9u8; 5];
        // SAFETY: the layout was checked against this 5-byte buffer.
        unsafe { l.write(buf.as_mut_ptr(), &[1u8, 2, 3, 4], |v| v) };
        assert_eq!(buf, [1, 2, 9, 3, 4]);
        // SAFETY: as above.
        assert_eq!(unsafe { l.read(buf.as_ptr()) }, vec![1, 2, 3, 4]);
        assert_eq!(Strided::check([2, 2, 1], [1, 3, 6], 1, 4).err(), Some(vxp_result::BufferTooSmall));
        assert_eq!(Strided::check([2, 2, 1], [-1, 3, 6], 1, 5).err(), Some(vxp_result::InvalidArgument));
        assert_eq!(Strided::check([2, 1, 1], [2, 0, 0], 4, 8).err(), Some(vxp_result::InvalidArgument));
    }
}

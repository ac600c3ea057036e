//! Stacks of slices along any axis of the input grid. A stack along `axis` has its slices z along that axis;
//! within a slice, columns x and rows y are the other two axes in grid order (i before j before k), so the
//! stack along k is the input array itself. Every conversion between grid and stack coordinates goes
//! through `Orientation`.

use super::{BoxIjk, U8Volume};
use crate::error::{Error, Result};

/// The propagation axis of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orientation {
    axis: u8,
}

impl Orientation {
    /// 2 = along k (axial for most CT), 1 = along j, 0 = along i.
    pub fn new(axis: u8) -> Result<Orientation> {
        if axis > 2 {
            return Err(Error::InvalidArgument(format!("propagation axis {axis} is not 0, 1 or 2")));
        }
        Ok(Orientation { axis })
    }

    pub fn axis(self) -> u8 {
        self.axis
    }

    /// Whether the stack is the grid itself (slices along k).
    pub fn is_native(self) -> bool {
        self.axis == 2
    }

    /// Grid axes of the stack's (x, y, z).
    pub fn grid_axes(self) -> [usize; 3] {
        match self.axis {
            0 => [1, 2, 0],
            1 => [0, 2, 1],
            _ => [0, 1, 2],
        }
    }

    /// A grid index (i, j, k) as stack coordinates (x, y, z).
    pub fn to_stack(self, ijk: [usize; 3]) -> [usize; 3] {
        let [u, v, a] = self.grid_axes();
        [ijk[u], ijk[v], ijk[a]]
    }

    /// Stack coordinates (x, y, z) as a grid index (i, j, k).
    pub fn to_grid(self, xyz: [usize; 3]) -> [usize; 3] {
        let [u, v, a] = self.grid_axes();
        let mut ijk = [0; 3];
        ijk[u] = xyz[0];
        ijk[v] = xyz[1];
        ijk[a] = xyz[2];
        ijk
    }

    /// The stack's dims (width, height, slices) for grid dims.
    pub fn stack_dims(self, grid: [usize; 3]) -> [usize; 3] {
        self.to_stack(grid)
    }

    /// The grid's dims for stack dims.
    pub fn grid_dims(self, stack: [usize; 3]) -> [usize; 3] {
        self.to_grid(stack)
    }

    /// A grid box in stack coordinates: min and max are (x, y, z).
    pub fn box_to_stack(self, b: &BoxIjk) -> BoxIjk {
        BoxIjk { min: self.to_stack(b.min), max: self.to_stack(b.max) }
    }

    /// The linear grid index (i fastest) of stack voxel (x, y, z).
    pub fn grid_index(self, grid: [usize; 3], xyz: [usize; 3]) -> usize {
        let [i, j, k] = self.to_grid(xyz);
        (k * grid[1] + j) * grid[0] + i
    }

    /// Calls `f(stack index within slice z, grid index)` for every pixel of slice z, rows then columns.
    pub fn for_each_in_slice(self, grid: [usize; 3], z: usize, mut f: impl FnMut(usize, usize)) {
        let [w, h, _] = self.stack_dims(grid);
        if self.is_native() {
            let base = z * w * h;
            for i in 0..w * h {
                f(i, base + i);
            }
            return;
        }
        for y in 0..h {
            for x in 0..w {
                f(y * w + x, self.grid_index(grid, [x, y, z]));
            }
        }
    }

    /// The grid volume resliced into this stack (a copy; the native stack is the volume itself).
    pub fn reslice(self, volume: &U8Volume) -> U8Volume {
        let grid = volume.dims;
        let [w, h, d] = self.stack_dims(grid);
        let mut out = U8Volume::zeros([w, h, d]);
        for z in 0..d {
            let slice = &mut out.data[z * w * h..(z + 1) * w * h];
            self.for_each_in_slice(grid, z, |s, g| slice[s] = volume.data[g]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_and_stack_coordinates_round_trip_on_every_axis() {
        let grid = [4, 3, 5];
        for axis in 0..3 {
            let o = Orientation::new(axis).unwrap();
            let sd = o.stack_dims(grid);
            assert_eq!(sd[2], grid[axis as usize]);
            assert_eq!(o.grid_dims(sd), grid);
            for ijk in [[0, 0, 0], [3, 2, 4], [1, 2, 3]] {
                let s = o.to_stack(ijk);
                assert_eq!(s[2], ijk[axis as usize]);
                assert_eq!(o.to_grid(s), ijk);
                assert_eq!(o.grid_index(grid, s), (ijk[2] * 3 + ijk[1]) * 4 + ijk[0]);
            }
        }
        assert!(Orientation::new(3).is_err());
    }

    #[test]
    fn reslicing_moves_every_voxel_to_its_stack_place() {
        let grid = [4, 3, 5];
        let mut v = U8Volume::zeros(grid);
        for (n, x) in v.data.iter_mut().enumerate() {
            *x = n as u8;
        }
        for axis in 0..3 {
            let o = Orientation::new(axis).unwrap();
            let s = o.reslice(&v);
            let [w, h, _] = s.dims;
            for (n, &val) in s.data.iter().enumerate() {
                let xyz = [n % w, (n / w) % h, n / (w * h)];
                assert_eq!(val as usize, o.grid_index(grid, xyz), "axis {axis} voxel {xyz:?}");
            }
        }
        let b = BoxIjk { min: [1, 0, 2], max: [3, 2, 4] };
        let sb = Orientation::new(0).unwrap().box_to_stack(&b);
        assert_eq!((sb.min, sb.max), ([0, 2, 1], [2, 4, 3]));
    }
}

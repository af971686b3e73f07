//! The 1.0 batch as the host lowers it into a plugin: `wit::Batch`'s records, except
//! that a column's `present` is a [`Present`], copied in one pass. wasmtime 48 lowers a
//! `list<bool>` one element at a time, each element looking up the plugin's memory
//! again: a quarter of the cost of moving a batch in, for one byte per event and column.

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};
use wasmtime::ValRaw;

use super::wit::Values;

/// `wit::Batch`.
#[derive(Debug, ComponentType, Lower)]
#[component(record)]
pub(crate) struct Batch {
    pub(crate) size: u32,
    pub(crate) columns: Vec<Column>,
}

/// `wit::Column`.
#[derive(Debug, ComponentType, Lower)]
#[component(record)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) present: Present,
    pub(crate) values: Values,
}

/// A `list<bool>`, lowered as the canonical ABI lays it out (one byte, 0 or 1, per
/// element) in one copy.
#[derive(Debug)]
pub(crate) struct Present(pub(crate) Vec<bool>);

impl Present {
    pub(crate) fn with_capacity(events: usize) -> Self {
        Self(Vec::with_capacity(events))
    }

    #[inline]
    pub(crate) fn push(&mut self, present: bool) {
        self.0.push(present);
    }

    /// Copies the list into memory the plugin allocates: (address, length).
    fn store<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(usize, usize)> {
        let len = self.0.len();
        // The plugin's `realloc`, called as wasmtime calls it for any list.
        let ptr = cx.realloc(0, 0, 1, len)?;
        let block = cx
            .as_slice_mut()
            .get_mut(ptr..)
            .and_then(|memory| memory.get_mut(..len))
            .ok_or_else(|| wasmtime::format_err!("realloc return: beyond end of memory"))?;
        for (byte, &present) in block.iter_mut().zip(&self.0) {
            *byte = u8::from(present);
        }
        Ok((ptr, len))
    }
}

// SAFETY: the layout is `list<bool>`'s (a pointer pair), checked against the
// plugin's type by `[bool]`'s own check. The derive macros write the same impls for
// records; wasmtime is pinned (host/Cargo.toml), so a change of this internal API
// fails the build, not a call.
#[allow(unsafe_code)]
unsafe impl ComponentType for Present {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[bool] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: writes what `[bool]`'s `Lower` writes: a block from the plugin's
// `realloc` holding one byte per element, and its address and length, flat as
// 64-bit values (as wasmtime writes every pointer pair) or in memory as two `u32`s.
#[allow(unsafe_code)]
unsafe impl Lower for Present {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        dst: &mut MaybeUninit<[ValRaw; 2]>,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        dst.write([ValRaw::i64(ptr as i64), ValRaw::i64(len as i64)]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        *cx.get::<4>(offset) = u32::try_from(ptr)?.to_le_bytes();
        *cx.get::<4>(offset + 4) = u32::try_from(len)?.to_le_bytes();
        Ok(())
    }
}

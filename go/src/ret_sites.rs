//! The return sites of a Go function, for uprobes placed on each RET instruction (Go's
//! goroutine stacks move, so uretprobes, which patch the return address on the stack, corrupt
//! them: iovisor/bcc#1320, golang/go#22008).
//!
//! The function's bytes are decoded instruction by instruction with `iced-x86` (x86-64): a
//! 0xC3 byte inside an immediate, a displacement or a longer opcode is not a RET, so a byte scan
//! would put probes in the middle of instructions. Near returns (`RET`, `RET imm16`, with or
//! without prefixes) are reported; the INT3 padding the Go linker puts between functions (which
//! `.gopclntab` sizes include) decodes as ordinary instructions.

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use super::symbols::{Function, MAX_FUNCTION_LEN};
use super::{GoBinary, GoError};

/// Offsets (from the start of `code`) of every near RET instruction in `code`, decoded as
/// x86-64 from its first byte.
///
/// # Errors
/// [`GoError::BadInstruction`] at the first byte sequence that is not a valid instruction
/// (data in the function, or a wrong entry address or size).
pub fn ret_offsets(code: &[u8]) -> Result<Vec<u64>, GoError> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut rets = Vec::new();
    while decoder.can_decode() {
        let offset = decoder.position() as u64;
        let instr = decoder.decode();
        if instr.is_invalid() {
            return Err(GoError::BadInstruction { offset });
        }
        if instr.mnemonic() == Mnemonic::Ret {
            rets.push(offset);
        }
    }
    Ok(rets)
}

/// The offset just past the stack-bound check that starts most Go functions on amd64
/// (`cmp rsp, [r14+16]` or `lea r12, [rsp-N]; cmp r12, [r14+16]`, then `jbe` to the
/// `runtime.morestack` call), 0 when the function has none (`//go:nosplit`). A call whose stack
/// must grow runs that prologue twice (after `morestack` copies the stack, execution restarts
/// at the entry), so an entry probe placed past it fires once per call; the argument
/// registers and RSP are still those of the entry there.
pub fn after_stack_check(code: &[u8]) -> u64 {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut compared = false;
    for _ in 0..4 {
        if !decoder.can_decode() {
            break;
        }
        let instr = decoder.decode();
        if instr.is_invalid() {
            break;
        }
        if instr.mnemonic() == Mnemonic::Cmp
            && (0..instr.op_count())
                .any(|i| instr.op_kind(i) == OpKind::Memory && instr.memory_base() == Register::R14)
        {
            compared = true;
        } else if compared && instr.mnemonic() == Mnemonic::Jbe {
            return decoder.position() as u64;
        } else if instr.mnemonic() != Mnemonic::Lea {
            break;
        }
    }
    0
}

impl GoBinary {
    /// The machine code of `function`, read from the file through its `PT_LOAD` segment.
    ///
    /// # Errors
    /// [`GoError::AddressNotMapped`] when the function is not file-backed, or
    /// [`GoError::OutOfBounds`] when its size exceeds [`MAX_FUNCTION_LEN`] or the file.
    pub fn function_code(&self, function: &Function) -> Result<&[u8], GoError> {
        if function.size > MAX_FUNCTION_LEN {
            return Err(GoError::OutOfBounds {
                what: "function",
                offset: function.addr,
                len: function.size,
            });
        }
        self.read_addr(function.addr, function.size)
    }

    /// Offsets from `function`'s entry of its RET instructions (x86-64 only).
    ///
    /// # Errors
    /// [`GoError::Unsupported`] on other machines; the errors of
    /// [`GoBinary::function_code`] and [`ret_offsets`].
    pub fn ret_offsets(&self, function: &Function) -> Result<Vec<u64>, GoError> {
        if self.machine() != object::elf::EM_X86_64 {
            return Err(GoError::Unsupported {
                reason: "return sites are decoded for x86-64 only",
            });
        }
        ret_offsets(self.function_code(function)?)
    }
}

#!/usr/bin/env python3
"""tests/nested/svm_shutdown.py arm|report — runs in L1 (init.sh calls it).

A triple fault of an L2 guest reaches ignition as KVM_EXIT_SHUTDOWN after KVM has already
reset the vCPU (the VMCB is undefined after a shutdown intercept), so ignition's own dump
shows only the reset state.  `arm` puts a kprobe on kvm_amd's shutdown_interception that
records the VMCB's save area (the state the emulated CPU was in when delivery failed) and
the event it was delivering; `report` prints what it caught.  The one offset that depends on
the L1 kernel build (struct vcpu_svm's vmcb pointer) is read from the module's BTF; the VMCB
layout itself is the architecture's (AMD APM vol. 2, appendix B)."""
import os
import struct
import sys

TRACE = "/sys/kernel/tracing"

# (name, offset in the VMCB, fetch type): control area first, save area at 0x400.
FIELDS = [("exit_int_info", 0x88, "x32"), ("exit_int_info_err", 0x8c, "x32"),
          ("event_inj", 0xa8, "x32"), ("int_ctl", 0x60, "x32"), ("int_state", 0x68, "x32"),
          ("rip", 0x578, "x64"), ("rsp", 0x5d8, "x64"), ("rflags", 0x570, "x64"),
          ("cpl", 0x4cb, "u8"), ("cr0", 0x558, "x64"), ("cr2", 0x640, "x64"),
          ("cr3", 0x550, "x64"), ("cr4", 0x548, "x64"), ("efer", 0x4d0, "x64"),
          ("cs", 0x410, "x16"), ("cs_attr", 0x412, "x16"), ("ss", 0x420, "x16"),
          ("ss_attr", 0x422, "x16"), ("gdt_base", 0x468, "x64"), ("gdt_limit", 0x464, "x32"),
          ("idt_base", 0x488, "x64"), ("idt_limit", 0x484, "x32"), ("tr", 0x490, "x16"),
          ("tr_attr", 0x492, "x16"), ("tr_base", 0x498, "x64"), ("tr_limit", 0x494, "x32")]


def btf(path):
    """(types, strings, string section size) of a BTF blob: types as (kind, name_off, info,
    size_or_type, extra bytes), numbered from 1 in file order."""
    data = open(path, "rb").read()
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data)
    if magic != 0xEB9F:
        raise ValueError(f"{path}: not BTF")
    types, pos, end = [], hdr_len + type_off, hdr_len + type_off + type_len
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    extra = {1: lambda v: 4, 3: lambda v: 12, 4: lambda v: 12 * v, 5: lambda v: 12 * v,
             6: lambda v: 8 * v, 13: lambda v: 8 * v, 14: lambda v: 4, 15: lambda v: 12 * v,
             17: lambda v: 4, 19: lambda v: 12 * v}
    while pos < end:
        name_off, info, size = struct.unpack_from("<III", data, pos)
        kind, vlen = (info >> 24) & 0x1f, info & 0xffff
        n = extra.get(kind, lambda v: 0)(vlen)
        types.append((kind, name_off, info, size, data[pos + 12:pos + 12 + n]))
        pos += 12 + n
    return types, strings


def name(off, base_strings, strings):
    if off < len(base_strings):
        s = base_strings[off:]
    else:
        s = strings[off - len(base_strings):]
    return s[:s.index(b"\0")].decode()


def vmcb_offset():
    _, base_strings = btf("/sys/kernel/btf/vmlinux")
    types, strings = btf("/sys/kernel/btf/kvm_amd")
    for kind, name_off, info, _size, extra in types:
        if kind != 4 or name(name_off, base_strings, strings) != "vcpu_svm":
            continue
        for i in range(info & 0xffff):
            m_name, _m_type, m_off = struct.unpack_from("<III", extra, 12 * i)
            if name(m_name, base_strings, strings) == "vmcb":
                bits = m_off & 0xffffff if info >> 31 else m_off
                return bits // 8
    raise LookupError("struct vcpu_svm has no member vmcb in kvm_amd's BTF")


def arm():
    if not os.path.isdir(TRACE + "/events"):
        os.system(f"mount -t tracefs tracefs {TRACE} 2>/dev/null")
    off = vmcb_offset()
    args = " ".join(f"{n}=+{o}(+{off}(%di)):{t}" for n, o, t in FIELDS)
    # os.write, not open(..., "a"): Python's append mode seeks, which tracefs refuses (EINVAL).
    for path, text in ((TRACE + "/kprobe_events",
                        f"p:kprobes/l2_shutdown kvm_amd:shutdown_interception {args}\n"),
                       (TRACE + "/events/kprobes/l2_shutdown/enable", "1\n")):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def report():
    try:
        lines = [line for line in open(TRACE + "/trace") if "l2_shutdown:" in line]
    except OSError:
        return
    for line in lines[-4:]:
        print("nested/svm: an L2 guest triple-faulted; the VMCB at the shutdown intercept: "
              + line.split("l2_shutdown:", 1)[1].strip(), flush=True)


if __name__ == "__main__":
    try:
        {"arm": arm, "report": report}[sys.argv[1]]()
    except Exception as e:  # a diagnostic: never the reason a run fails
        print(f"nested/svm: {sys.argv[1:]} not available ({e})", flush=True)

#!/usr/bin/env python3
"""Compiles one GLSL compute shader to SPIR-V 1.6 through libslang-glslang's C entry point
(tools/fetch_glslang_cm2.sh): the glslang build that knows GL_NV_cooperative_matrix2. Build time
only (cmake/glslang_cm2.cmake). That entry point takes one source string and no options, so this
script does what glslangValidator's -I, -D and --depfile would: it inlines #include "..." files
(with #line directives, so errors name the right file and line), puts the -D defines after
#version, writes a make-style depfile, and checks the module with the library's own SPIR-V
validator.
Usage: glsl_cm2.py --lib LIB [-I DIR]... [-D NAME[=VALUE]]... [--depfile F] -o OUT SRC
"""
import argparse
import ctypes
import os
import re
import sys

SLANG_STAGE_COMPUTE = 6  # slang.h: SlangStage
ACTION_COMPILE_GLSL_TO_SPIRV = 0
OPTIMIZATION_HIGH = 2  # the library runs spirv-opt's -O passes
OutputFunc = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


class SpirvVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]


class CompileRequest(ctypes.Structure):  # glslang_CompileRequest_1_2 (slang-glslang.h)
    _fields_ = [("sizeInBytes", ctypes.c_size_t), ("sourcePath", ctypes.c_char_p),
                ("inputBegin", ctypes.c_void_p), ("inputEnd", ctypes.c_void_p),
                ("diagnosticFunc", OutputFunc), ("diagnosticUserData", ctypes.c_void_p),
                ("outputFunc", OutputFunc), ("outputUserData", ctypes.c_void_p),
                ("slangStage", ctypes.c_int), ("action", ctypes.c_uint),
                ("optimizationLevel", ctypes.c_uint), ("debugInfoType", ctypes.c_uint),
                ("spirvTargetName", ctypes.c_char_p), ("spirvVersion", SpirvVersion),
                ("entryPointName", ctypes.c_char_p)]


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def expand(path, dirs, seen, deps, files):
    """The text of `path` with its includes inlined (each file once: the headers have guards)."""
    if path not in files:
        files.append(path)
    # The root file starts as string 0, line 1 (#version must come first); included ones say so.
    out = [f"#line 1 {files.index(path)}"] if files.index(path) else []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        name = m.group(1)
        cands = [os.path.join(os.path.dirname(path), name)] + [os.path.join(d, name) for d in dirs]
        found = next((c for c in cands if os.path.isfile(c)), None)
        if found is None:
            sys.exit(f"{path}:{n}: error: include file {name} not found")
        found = os.path.abspath(found)
        deps.add(found)
        if found not in seen:
            seen.add(found)
            out.append(expand(found, dirs, seen, deps, files))
        out.append(f"#line {n + 1} {files.index(path)}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True)
    ap.add_argument("-I", dest="inc", action="append", default=[])
    ap.add_argument("-D", dest="defs", action="append", default=[])
    ap.add_argument("--depfile")
    ap.add_argument("-o", dest="out", required=True)
    ap.add_argument("src")
    a = ap.parse_args()

    src = os.path.abspath(a.src)
    deps, files = {src}, []
    body = expand(src, a.inc, {src}, deps, files)
    lines = body.split("\n")
    ver = next((i for i, l in enumerate(lines) if l.lstrip().startswith("#version")), None)
    if ver is None:
        sys.exit(f"{a.src}: error: no #version line")
    defs = [f"#define {d.replace('=', ' ', 1)}" if "=" in d else f"#define {d} 1" for d in a.defs]
    # The #line directives use file numbers; the defines go right after #version.
    text = "\n".join(lines[:ver + 1] + defs + [f"#line {ver + 2} 0"] + lines[ver + 1:])

    lib = ctypes.CDLL(a.lib)
    out, diag = [], []
    on_out = OutputFunc(lambda p, n, u: out.append(ctypes.string_at(p, n)))
    on_diag = OutputFunc(lambda p, n, u: diag.append(ctypes.string_at(p, n)))
    data = text.encode()
    buf = ctypes.create_string_buffer(data, len(data))
    r = CompileRequest()
    r.sizeInBytes = ctypes.sizeof(CompileRequest)
    r.sourcePath = a.src.encode()
    r.inputBegin = ctypes.addressof(buf)
    r.inputEnd = ctypes.addressof(buf) + len(data)
    r.diagnosticFunc, r.outputFunc = on_diag, on_out
    r.slangStage = SLANG_STAGE_COMPUTE
    r.action = ACTION_COMPILE_GLSL_TO_SPIRV
    r.optimizationLevel = OPTIMIZATION_HIGH
    r.spirvVersion = SpirvVersion(1, 6, 0)
    r.entryPointName = b"main"
    rc = lib.glslang_compile_1_2(ctypes.byref(r))
    msg = b"".join(diag).decode(errors="replace").strip()
    # Error lines say "ERROR: <file number>:<line>: ...": name the file.
    msg = re.sub(r"(ERROR|WARNING): (\d+):(\d+):",
                 lambda m: f"{m.group(1)}: {files[int(m.group(2))] if int(m.group(2)) < len(files) else m.group(2)}:{m.group(3)}:",
                 msg)
    spv = b"".join(out)
    if rc != 0 or not spv:
        sys.exit(f"{a.src}: glslang (cm2) failed{': ' + msg if msg else ''}")
    if msg:
        print(msg, file=sys.stderr)
    lib.glslang_validateSPIRV.restype = ctypes.c_bool
    if not lib.glslang_validateSPIRV(ctypes.c_char_p(spv), len(spv) // 4):
        sys.exit(f"{a.src}: the SPIR-V module does not validate")
    with open(a.out, "wb") as f:
        f.write(spv)
    if a.depfile:
        with open(a.depfile, "w") as f:
            f.write(a.out.replace(" ", "\\ ") + ": " + " ".join(d.replace(" ", "\\ ") for d in sorted(deps)) + "\n")


if __name__ == "__main__":
    main()

# VoxPrompt — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.deps/onnxruntime/lib/libonnxruntime.so.1.32.0
export VXP_ORT_LIB := $(ORT_LIB)
# The optional `openvino` encoder provider (#18): OpenVINO's CPU runtime from its official wheel.
OPENVINO_LIB := $(CURDIR)/.deps/openvino/lib/libopenvino_c.so.2640
export VXP_OPENVINO_LIB := $(OPENVINO_LIB)
CARGO ?= cargo
OUT ?= out/demo

.PHONY: all setup build demo install slicer-package test-slicer-package wheel test-wheel test test-header test-symbols test-plugin test-hosts test-c test-install test-itk test-readme fuzz test-fuzz clean-out

all: build

$(ORT_LIB):
	scripts/setup-onnxruntime

$(OPENVINO_LIB):
	scripts/setup-openvino

data/.setup-done:
	scripts/setup-data
	touch $@

setup: $(ORT_LIB) $(OPENVINO_LIB) data/.setup-done

build:
	$(CARGO) build --release --locked
	@# the SONAME is libvoxprompt.so.0: hosts linked against the build tree need that name too
	ln -sf libvoxprompt.so target/release/libvoxprompt.so.0

# Segment four organs of TotalSegmentator case A at once in 3D (liver 5, spleen 1, kidneys 2 and 3), each from
# one box taken from its reference mask, with the default policy; writes the label mask, the confidence map and
# a PNG montage of both.
demo: $(ORT_LIB) build
	@mkdir -p $(OUT)
	./target/release/voxprompt segment tests/fixtures/data/example_ct_sm.nii.gz \
	    -o $(OUT)/organs_mask.nii.gz --confidence $(OUT)/organs_confidence.nii.gz --png $(OUT)/organs.png \
	    --reference tests/fixtures/data/example_seg.nii.gz --box-from-reference \
	    --reference-label 5 --reference-label 1 --reference-label 2 --reference-label 3 --modality ct
	@echo "wrote $(OUT)/organs_mask.nii.gz, $(OUT)/organs_confidence.nii.gz and $(OUT)/organs.png"

# test-panic adds vxp_test_panic() to the debug library so the panic boundary is tested through the ABI.
test: setup
	@# The library without the cli feature links none of the CLI's dependencies. tokenizers (the text encoder's
	@# tokenizer) needs rayon and serde_json unconditionally; nothing else in the library may bring them (rayon's
	@# pool never starts: phrases are encoded one at a time).
	! $(CARGO) tree -e normal --no-default-features --locked | grep -E ' (clap|indicatif|env_logger) v'
	for c in rayon serde_json; do \
	  ! $(CARGO) tree -e normal --no-default-features --locked -i $$c --prefix none --depth 1 | sort -u | \
	    grep -vE "^($$c|rayon-cond|tokenizers) v" || exit 1; done
	$(CARGO) build --locked --features test-panic
	$(CARGO) test --locked --features test-panic -- --test-threads 2
	$(MAKE) test-header test-symbols test-plugin

# The Slicer module's logic without Slicer (pytest + numpy + nibabel in a venv under .deps), over the debug library.
PLUGIN_VENV := .deps/venv-plugin-test
$(PLUGIN_VENV)/.installed: plugin/tests/requirements.txt
	python3 -m venv $(PLUGIN_VENV)
	$(PLUGIN_VENV)/bin/pip install -q --disable-pip-version-check -r plugin/tests/requirements.txt
	touch $@

test-plugin: $(ORT_LIB) $(PLUGIN_VENV)/.installed
	$(CARGO) build --locked --features test-panic
	VXP_LIB=$(CURDIR)/target/debug/libvoxprompt.so $(PLUGIN_VENV)/bin/python -m pytest -q -p no:cacheprovider plugin/tests

# Only vxp_* symbols are exported, and the SONAME carries the ABI major.
test-symbols:
	@bad=$$(nm -D --defined-only target/debug/libvoxprompt.so | awk '$$3 !~ /^vxp_/ {print $$3}'); \
	  if [ -n "$$bad" ]; then echo "unexpected exported symbols: $$bad"; exit 1; fi
	readelf -d target/debug/libvoxprompt.so | grep -q 'SONAME.*libvoxprompt.so.0'
	@echo "exports: $$(nm -D --defined-only target/debug/libvoxprompt.so | wc -l) vxp_* symbols, SONAME libvoxprompt.so.0"

# The generated header compiles as C99 and C++17, strictly, included twice.
test-header:
	@mkdir -p target/header-check
	printf '#include "voxprompt.h"\n#include "voxprompt.h"\nint main(void) { return vxp_version() == 0; }\n' > target/header-check/t.c
	cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude -c target/header-check/t.c -o target/header-check/t.o
	c++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -x c++ -c target/header-check/t.c -o target/header-check/t.o

# Installs the library, header, pkg-config file, CMake package, ONNX Runtime and the model under PREFIX.
PREFIX ?= /usr/local
install: $(ORT_LIB) build
	PREFIX=$(PREFIX) scripts/install

# C and C++ hosts (Debian packages: cmake pkg-config zlib1g-dev valgrind libc6-dbg libinsighttoolkit5-dev; .ci/run
# installs them): a C99 program under valgrind and ASan/UBSan, the installed copy through pkg-config and
# CMake, and the ITK example, which must produce the CLI's mask exactly; then README.md's examples.
test-hosts: test-c test-install test-itk test-slicer-package test-wheel test-readme

test-c: $(ORT_LIB)
	$(CARGO) build --locked
	scripts/test-c

test-install: $(ORT_LIB)
	scripts/test-install

test-itk: $(ORT_LIB) build
	scripts/test-itk

# Every README.md example marked `<!-- ci: run -->` (one per subcommand), run with the release binary in a
# temporary folder; a failing one is named by its line. A minute or so on two cores.
test-readme: $(ORT_LIB) build
	scripts/test-readme

# The self-contained 3D Slicer module folder (module, libvoxprompt, ONNX Runtime, models, licences) and its
# .tar.gz under target/slicer-package; the test unpacks it in a clean folder and segments from there.
slicer-package: $(ORT_LIB) build
	scripts/slicer-package

test-slicer-package: slicer-package $(PLUGIN_VENV)/.installed
	scripts/test-slicer-package $(PLUGIN_VENV)/bin/python

# The Python package `voxprompt` as a platform wheel bundling the library, ONNX Runtime and the models
# (target/wheel); the test pip-installs it into a fresh venv and runs cases serially and on a local Dask cluster.
wheel: slicer-package
	scripts/make-wheel

test-wheel: wheel
	scripts/test-wheel

# The fuzzing harness (fuzz/, cargo-fuzz on the stable toolchain) under AddressSanitizer, FUZZ_SECONDS per
# target (the longer run), then the concurrency stress run in the same sanitizer build. test-fuzz is CI's
# bounded share.
FUZZ_SECONDS ?= 600
fuzz: $(ORT_LIB) data/.setup-done
	scripts/fuzz $(FUZZ_SECONDS)

test-fuzz: $(ORT_LIB) data/.setup-done
	scripts/fuzz 60

clean-out:
	rm -rf out

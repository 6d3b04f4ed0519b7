# VMInsight top-level entry point.
#   make demo   boot the lab (real KVM in QEMU), attach to a guest, stream its process events
#   make test   every test: unit tests, sanitizer unit tests, style checks, lab tests
#   make bench  benchmark figures
# Everything installs what it needs first (scripts/deps.sh) and builds out of tree in build/.

SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
KERNELS ?= 6.1 6.12
LAB_KERNEL ?= 6.1
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps userspace kmod lab-modules test unit-test sanitize-test lab-test demo bench lab-shell clean \
	install uninstall deb

all: userspace kmod

# deps.sh is idempotent but consults apt; run it once per build tree and when it changes.
deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh scripts/lab/kernels.sh
	bash scripts/deps.sh
	@mkdir -p $(BUILD) && touch $@

userspace: deps
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD)/release -j$(JOBS)

# vminsight.ko for every supported kernel, each in its own copy of kmod/ (kbuild writes
# into the source directory).
kmod: deps
	@set -e; . scripts/lab/kernels.sh; for k in $(KERNELS); do \
		abi=$$(vmi_kernel_abi $$k); out=$(abspath $(BUILD))/kmod/$$abi; \
		mkdir -p $$out && cp -r kmod/. $$out/; \
		$(MAKE) -s -C /usr/src/linux-headers-$$abi M=$$out modules; \
		echo "kmod: $$out/vminsight.ko"; \
	done

# Test-only guest kernel modules (tests/lab/guest-modules/*: e.g. vmi_tamper.ko, rootkit-like
# tampering for the integrity lab tests), built for every lab kernel; never installed.
lab-modules: deps
	@set -e; . scripts/lab/kernels.sh; for k in $(KERNELS); do \
		abi=$$(vmi_kernel_abi $$k); \
		for m in tests/lab/guest-modules/*/; do \
			out=$(abspath $(BUILD))/lab-modules/$$abi/$$(basename $$m); \
			mkdir -p $$out && cp -r $$m. $$out/; \
			$(MAKE) -s -C /usr/src/linux-headers-$$abi M=$$out modules; \
		done; \
	done

test: deps
	bash scripts/test.sh

bench: userspace
	bash scripts/bench.sh

demo: deps
	bash scripts/demo.sh

# An interactive lab host with the module, daemon and processes scenario staged in it.
lab-shell: userspace
	bash scripts/lab-test.sh $(LAB_KERNEL) tests/lab/scenarios/processes $(BUILD)/lab-shell -- --shell

# Installing (README "Installing"): binaries, the systemd unit, configuration in /etc, man
# pages, completion; the module's source for DKMS in /usr/src/vminsight-VERSION, registered
# and built for the running kernel (when its headers are there) unless DESTDIR is set.
PREFIX ?= /usr
install: userspace kmod
	PREFIX='$(PREFIX)' DESTDIR='$(if $(DESTDIR),$(abspath $(DESTDIR)))' bash packaging/install.sh $(BUILD)

# Removes what install placed for the same DESTDIR (and the module from DKMS).
uninstall:
	DESTDIR='$(if $(DESTDIR),$(abspath $(DESTDIR)))' bash packaging/uninstall.sh $(BUILD)

# $(BUILD)/deb/vminsight_VERSION_amd64.deb and vminsight-dkms_VERSION_all.deb.
deb: userspace
	bash packaging/deb/build.sh $(BUILD)

clean:
	rm -rf $(BUILD)

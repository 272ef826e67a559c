# s3cache: build, run locally, test, install.
#
#   make build      install the build libraries, build .build/release/s3cache
#   make run        install what is needed, build, start moto + worker + nginx on 127.0.0.1:8080
#   make test       install what is needed, build, run every test (unit, unit under ASan and TSan, integration)
#   make install    binary, systemd units, nginx snippets into their usual places
#   make uninstall  remove what make install put there
#   make deb        dist/s3cache_<version>_<arch>.deb (binary with Swift's runtime linked in)

SHELL := /bin/sh
SWIFT ?= swift
# The Python tools (moto, pytest, boto3) live in the tree's virtual environment, which
# scripts/install-deps makes from Debian's python3 (python3-venv): never the system Python.
VENV ?= $(CURDIR)/.venv
PYTHON ?= $(VENV)/bin/python
# moto's S3 server, for the Swift tests of the S3 client and the integration tests.
MOTO_SERVER ?= $(VENV)/bin/moto_server
PORT ?= 8080

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
NGINXDIR ?= /etc/nginx/snippets
CONFDIR ?= /etc/s3cache
DOCDIR := $(PREFIX)/share/doc/s3cache
MANDIR := $(PREFIX)/share/man

BINARY := .build/release/s3cache
# What the binaries are built from: `make install` and `make deb` rebuild when one changed.
SWIFT_SOURCES := Package.swift $(shell find Sources -type f 2>/dev/null)
# Extra arguments for pytest, e.g. make test PYTEST_ARGS='-k cache -x'
PYTEST_ARGS ?=

# The package: version from the one place the worker reports it (S3CacheVersion.current),
# plus a Debian revision; built in its own scratch path with the Swift runtime linked
# statically, so the .deb does not need /opt/swift. -z now: full RELRO, as Debian builds.
VERSION := $(shell sed -n 's/^ *public static let current = "\([^"]*\)".*/\1/p' Sources/S3CacheCore/Server/Process.swift)
DEB_REVISION ?= 1
DEB_VERSION := $(VERSION)-$(DEB_REVISION)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_SCRATCH := .build-deb
DEB_BINARY := $(DEB_SCRATCH)/release/s3cache
DEB := dist/s3cache_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_FILES := $(wildcard systemd/* nginx/* packaging/* packaging/debian/*)

.PHONY: all deps build-deps build run test unit-test sanitizer-test integration-test install uninstall deb clean

all: build

# Everything the stack and the tests need, the virtual environment included.
deps:
	VENV=$(VENV) ./scripts/install-deps all

# Only what building needs: the C libraries the worker links.
build-deps:
	./scripts/install-deps build

build: build-deps
	$(SWIFT) build -c release --product s3cache

run: deps build
	MOTO_SERVER=$(MOTO_SERVER) $(PYTHON) scripts/stack.py run --port $(PORT)

test: deps build
	$(MAKE) --no-print-directory unit-test sanitizer-test integration-test

unit-test:
	MOTO_SERVER=$(MOTO_SERVER) $(SWIFT) test

# The unit suite under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer, each in its own
# scratch path. The suppression files say what they hide and why (README, Development).
sanitizer-test:
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt MOTO_SERVER=$(MOTO_SERVER) \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan
	TSAN_OPTIONS=suppressions=$(CURDIR)/Tests/tsan-suppressions.txt MOTO_SERVER=$(MOTO_SERVER) \
		$(SWIFT) test --sanitize=thread --scratch-path .build-tsan

integration-test:
	S3CACHE_BIN=$(CURDIR)/$(BINARY) MOTO_SERVER=$(MOTO_SERVER) $(PYTHON) -m pytest -ra $(PYTEST_ARGS) Tests/Integration

install: $(BINARY)
	install -D -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/s3cache
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	install -m 0644 systemd/s3cache.socket $(DESTDIR)$(UNITDIR)/s3cache.socket
	# The unit names /usr/bin/s3cache, where the package puts it.
	sed 's|/usr/bin/s3cache|$(BINDIR)/s3cache|g' systemd/s3cache.service > $(DESTDIR)$(UNITDIR)/s3cache.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/s3cache.service
	install -D -m 0644 nginx/s3cache-upstream.conf $(DESTDIR)$(NGINXDIR)/s3cache-upstream.conf
	install -D -m 0644 nginx/s3cache-locations.conf $(DESTDIR)$(NGINXDIR)/s3cache-locations.conf
	install -D -m 0644 nginx/s3cache-fastcgi.conf $(DESTDIR)$(NGINXDIR)/s3cache-fastcgi.conf
	install -D -m 0644 nginx/s3cache-files.conf $(DESTDIR)$(NGINXDIR)/s3cache-files.conf
	install -D -m 0644 nginx/s3cache-files.conf $(DESTDIR)$(NGINXDIR)/s3cache-files.conf
	# The allow list is the operator's: never overwritten once it exists.
	test -e $(DESTDIR)$(NGINXDIR)/s3cache-monitoring.conf || install -D -m 0644 nginx/s3cache-monitoring.conf $(DESTDIR)$(NGINXDIR)/s3cache-monitoring.conf
	test -e $(DESTDIR)$(NGINXDIR)/s3cache-notify-senders.conf || install -D -m 0644 nginx/s3cache-notify-senders.conf $(DESTDIR)$(NGINXDIR)/s3cache-notify-senders.conf
	install -D -m 0644 nginx/example-site.conf $(DESTDIR)$(DOCDIR)/example-site.conf
	install -D -m 0644 packaging/s3cache.8 $(DESTDIR)$(MANDIR)/man8/s3cache.8
	# The configuration is the operator's (it holds the S3 secret): never overwritten once it exists.
	test -e $(DESTDIR)$(CONFDIR)/s3cache.conf || install -D -m 0640 systemd/s3cache.env $(DESTDIR)$(CONFDIR)/s3cache.conf
	# The gateway keys (secrets too): likewise the operator's.
	test -e $(DESTDIR)$(CONFDIR)/keys || install -D -m 0640 systemd/s3cache.keys $(DESTDIR)$(CONFDIR)/keys
	@if [ -z "$(DESTDIR)" ]; then \
		getent passwd s3cache >/dev/null || \
			useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin s3cache; \
		chown root:s3cache $(CONFDIR)/s3cache.conf $(CONFDIR)/keys && chmod 0640 $(CONFDIR)/s3cache.conf $(CONFDIR)/keys; \
		systemctl daemon-reload 2>/dev/null || true; \
		echo "installed; edit $(CONFDIR)/s3cache.conf, then: systemctl enable --now s3cache.socket"; \
	fi

uninstall:
	@# Only a real uninstall touches systemd. Stopping needs a running systemd; disabling
	@# works without one (it removes the sockets.target.wants link), so they are separate.
	@if [ -z "$(DESTDIR)" ]; then \
		systemctl stop s3cache.socket s3cache.service 2>/dev/null || true; \
		systemctl disable s3cache.socket 2>/dev/null || true; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/s3cache
	rm -f $(DESTDIR)$(UNITDIR)/s3cache.socket $(DESTDIR)$(UNITDIR)/s3cache.service
	rm -f $(DESTDIR)$(NGINXDIR)/s3cache-upstream.conf $(DESTDIR)$(NGINXDIR)/s3cache-locations.conf $(DESTDIR)$(NGINXDIR)/s3cache-fastcgi.conf $(DESTDIR)$(NGINXDIR)/s3cache-files.conf
	rm -f $(DESTDIR)$(MANDIR)/man8/s3cache.8
	rm -rf $(DESTDIR)$(DOCDIR)
	@if [ -z "$(DESTDIR)" ]; then systemctl daemon-reload 2>/dev/null || true; fi
	@echo "left in place: $(DESTDIR)$(CONFDIR)/s3cache.conf, $(DESTDIR)$(CONFDIR)/keys, $(DESTDIR)$(NGINXDIR)/s3cache-monitoring.conf, $(DESTDIR)$(NGINXDIR)/s3cache-notify-senders.conf and the s3cache user (remove them by hand if wanted)"

deb: $(DEB)

$(DEB): $(DEB_BINARY) $(DEB_FILES)
	@test -n "$(VERSION)" || { echo "cannot read S3CacheVersion.current from Sources/S3CacheCore/Server/Process.swift" >&2; exit 1; }
	@test -n "$(DEB_ARCH)" || { echo "dpkg --print-architecture failed: make deb needs Debian's dpkg" >&2; exit 1; }
	packaging/build-deb $(DEB_BINARY) $(DEB_VERSION) $(DEB_ARCH) $(DEB_SCRATCH)/deb-root $@

$(DEB_BINARY): $(SWIFT_SOURCES)
	$(SWIFT) build -c release --product s3cache --static-swift-stdlib --scratch-path $(DEB_SCRATCH) \
		-Xlinker -z -Xlinker now
	@touch $@

$(BINARY): $(SWIFT_SOURCES)
	$(SWIFT) build -c release --product s3cache
	@touch $@

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz $(DEB_SCRATCH) dist

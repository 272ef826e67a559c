# s3cache: build, run locally, test, install.
#
#   make run        install what is needed, build, start moto + worker + nginx on 127.0.0.1:8080
#   make test       install what is needed, build, run every test (unit and integration)
#   make install    binary, systemd units, nginx snippets into their usual places
#   make uninstall  remove what make install put there

SHELL := /bin/sh
SWIFT ?= swift
PYTHON ?= python3
PORT ?= 8080

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
NGINXDIR ?= /etc/nginx/snippets
CONFDIR ?= /etc/s3cache
DOCDIR := $(PREFIX)/share/doc/s3cache

BINARY := .build/release/s3cache
# Extra arguments for pytest, e.g. make test PYTEST_ARGS='-k cache -x'
PYTEST_ARGS ?=

.PHONY: all deps build run test unit-test integration-test install uninstall clean

all: build

deps:
	./scripts/install-deps

build: deps
	$(SWIFT) build -c release --product s3cache

run: build
	$(PYTHON) scripts/stack.py run --port $(PORT)

test: build
	$(MAKE) --no-print-directory unit-test integration-test

unit-test:
	$(SWIFT) test

integration-test:
	S3CACHE_BIN=$(CURDIR)/$(BINARY) $(PYTHON) -m pytest -ra $(PYTEST_ARGS) Tests/Integration

install: $(BINARY)
	install -D -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/s3cache
	install -D -m 0644 systemd/s3cache.socket $(DESTDIR)$(UNITDIR)/s3cache.socket
	sed 's|/usr/bin/s3cache|$(BINDIR)/s3cache|g' systemd/s3cache.service > $(DESTDIR)$(UNITDIR)/s3cache.service.tmp
	install -D -m 0644 $(DESTDIR)$(UNITDIR)/s3cache.service.tmp $(DESTDIR)$(UNITDIR)/s3cache.service
	rm -f $(DESTDIR)$(UNITDIR)/s3cache.service.tmp
	install -D -m 0644 nginx/s3cache-upstream.conf $(DESTDIR)$(NGINXDIR)/s3cache-upstream.conf
	install -D -m 0644 nginx/s3cache-locations.conf $(DESTDIR)$(NGINXDIR)/s3cache-locations.conf
	install -D -m 0644 nginx/s3cache-fastcgi.conf $(DESTDIR)$(NGINXDIR)/s3cache-fastcgi.conf
	install -D -m 0644 nginx/example-site.conf $(DESTDIR)$(DOCDIR)/example-site.conf
	# The configuration is the operator's: never overwritten once it exists.
	test -e $(DESTDIR)$(CONFDIR)/s3cache.conf || install -D -m 0640 systemd/s3cache.env $(DESTDIR)$(CONFDIR)/s3cache.conf
	@if [ -z "$(DESTDIR)" ]; then \
		getent passwd s3cache >/dev/null || useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin s3cache; \
		chgrp s3cache $(CONFDIR)/s3cache.conf; \
		systemctl daemon-reload 2>/dev/null || true; \
		echo "installed; now: systemctl enable --now s3cache.socket"; \
	fi

uninstall:
	-systemctl disable --now s3cache.socket s3cache.service 2>/dev/null
	rm -f $(DESTDIR)$(BINDIR)/s3cache
	rm -f $(DESTDIR)$(UNITDIR)/s3cache.socket $(DESTDIR)$(UNITDIR)/s3cache.service
	rm -f $(DESTDIR)$(NGINXDIR)/s3cache-upstream.conf $(DESTDIR)$(NGINXDIR)/s3cache-locations.conf $(DESTDIR)$(NGINXDIR)/s3cache-fastcgi.conf
	rm -rf $(DESTDIR)$(DOCDIR)
	-systemctl daemon-reload 2>/dev/null
	@echo "left in place: $(CONFDIR)/s3cache.conf and the s3cache user (remove them by hand if wanted)"

$(BINARY):
	$(SWIFT) build -c release --product s3cache

clean:
	rm -rf .build

# pnc-pki: two commands on a fresh Debian/Ubuntu machine.
#   make run   installs SoftHSM2 if missing, creates the token and demo hierarchy under ./var, serves
#   make test  the whole suite (SQLite + PostgreSQL at $PNC_TEST_POSTGRES_URL or
#              postgres://postgres@127.0.0.1:5432/test; with CI set a missing PostgreSQL fails;
#              SoftHSM2 and, for the HSM-facing tests, kryoptic built by hsm/build-kryoptic.sh)

DATA_DIR ?= ./var
LISTEN   ?= 127.0.0.1:8080
# Written into certificates (OCSP, CRL addresses): where this service answers.
PUBLIC_URL ?= http://$(LISTEN)
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps kryoptic-deps build clippy fmt bench screenshots

deps:
	@command -v softhsm2-util >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 || { \
	  echo "installing softhsm2 and openssl (Debian packages)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq softhsm2 openssl; }
	@command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install Rust (https://rustup.rs)"; exit 1; }
	@dpkg -s libssl-dev >/dev/null 2>&1 || [ -e /usr/include/openssl/ssl.h ] || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libssl-dev pkg-config; }
	@# The console's browser test drives Debian's Chromium through its WebDriver.
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || { \
	  echo "installing chromium and chromium-driver (Debian packages, for the console's browser test)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; }

build: deps
	cargo build --release --locked

run: build
	./target/release/pnc-pki init --data-dir $(DATA_DIR) --public-url $(PUBLIC_URL)
	./target/release/pnc-pki tree --data-dir $(DATA_DIR)
	@echo
	@echo "console:     $(PUBLIC_URL)/ui/"
	@echo "first user:  ./target/release/pnc-pki user add --data-dir $(DATA_DIR) --name admin --role admin"
	@echo "             (prints the password once; run it in another terminal)"
	@echo
	PNC_LOG=$${PNC_LOG:-info} ./target/release/pnc-pki serve --data-dir $(DATA_DIR) --listen $(LISTEN)

# The HSM-facing tests also run on a second PKCS#11 implementation, kryoptic from crates.io,
# built once and cached by hsm/build-kryoptic.sh (bindgen needs libclang-dev, its storage
# libsqlite3-dev); its tokens are made with OpenSC's pkcs11-tool. PNC_TEST_KRYOPTIC_MODULE, when
# set, names a module already built.
kryoptic-deps:
	@dpkg -s libclang-dev libsqlite3-dev >/dev/null 2>&1 && command -v pkcs11-tool >/dev/null 2>&1 || { \
	  echo "installing libclang-dev, libsqlite3-dev and opensc (Debian packages, for the kryoptic tests)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libclang-dev libsqlite3-dev opensc; }

test: deps kryoptic-deps
	@m=$${PNC_TEST_KRYOPTIC_MODULE:-$$(hsm/build-kryoptic.sh)} && \
	  echo "kryoptic module: $$m" && \
	  PNC_TEST_KRYOPTIC_MODULE=$$m cargo test --locked --all-targets

clippy:
	cargo clippy --locked --all-targets -- -D warnings

fmt:
	cargo fmt --all -- --check

# Screenshots of every console page at 1280x800 into docs/console/ (the browser test makes them).
screenshots: deps
	PNC_CONSOLE_SHOTS=$(CURDIR)/docs/console cargo test --locked --test console -- the_console_in_headless_chromium reporting_a_sub_ca_compromise_in_the_console

bench: deps
	cargo run --release --locked --bin pnc-pki-bench -- --signatures 20000 --issuances 2000

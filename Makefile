# Thin wrapper over meson. `make demo` and `make test` each do all their own set-up on a fresh
# Debian 12 machine (as root): missing packages are installed with apt-get, then meson
# configures and builds.
BUILD ?= build
MESON_FLAGS ?= --werror
# Build and test dependencies (Debian package names). python3, gcc, make and git are assumed.
DEPS := meson ninja-build pkg-config libcmocka-dev libcurl4-openssl-dev libcjson-dev python3 \
	python3-mesonpy python3-pip python3-yaml librabbitmq-dev rabbitmq-server prometheus \
	libmicrohttpd-dev nodejs clang-format
SAN_DEPS := clang libclang-rt-14-dev

# The full package list, one line (.ci/run installs it).
print-deps:
	@echo $(DEPS) $(SAN_DEPS)

.PHONY: print-deps all deps san-deps build demo test test-tsan test-asan test-sanitizers test-nofutex format bench clean

all: build

deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

	@# Node tools the tests run (tests/node/package.json): installed once, from the npm registry.
	@if command -v npm >/dev/null 2>&1 && [ ! -f tests/node/node_modules/.installed ]; then \
	  echo "installing npm test tools (tests/node)"; \
	  npm install --prefix tests/node --no-audit --no-fund --loglevel=error && \
	  touch tests/node/node_modules/.installed; \
	fi

san-deps: deps
	@missing=""; for p in $(SAN_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BUILD)/build.ninja:
	$(MAKE) deps
	meson setup $(BUILD) $(MESON_FLAGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	./$(BUILD)/examples/demo

test: build
	meson test -C $(BUILD) --print-errorlogs

# Every suite again under ThreadSanitizer and under AddressSanitizer+UBSan, built with clang.
build-tsan/build.ninja:
	CC=clang meson setup build-tsan $(MESON_FLAGS) -Db_sanitize=thread -Db_lundef=false \
	    -Dbenchmarks=false

build-asan/build.ninja:
	CC=clang meson setup build-asan $(MESON_FLAGS) -Db_sanitize=address,undefined \
	    -Dc_args=-fno-sanitize-recover=all \
	    -Db_lundef=false -Dbenchmarks=false

test-tsan: san-deps build-tsan/build.ninja
	ninja -C build-tsan
	meson test -C build-tsan --setup tsan --print-errorlogs --no-suite headers

test-asan: san-deps build-asan/build.ninja
	ninja -C build-asan
	meson test -C build-asan --setup asan --print-errorlogs --no-suite headers

# The portable parking fallback (mutex+condvar table instead of futexes): the channel, pool and
# engine suites on a build that compiles it.
build-nofutex/build.ninja:
	meson setup build-nofutex $(MESON_FLAGS) -Dfutex=false -Dbenchmarks=false -Dexamples=false

test-nofutex: deps build-nofutex/build.ninja
	ninja -C build-nofutex
	meson test -C build-nofutex --print-errorlogs --suite unit --suite stress --suite fuzz

test-sanitizers: test-tsan test-asan

# Format every tracked C source with the checked-in .clang-format (the format test checks it).
format:
	git ls-files 'src/*.[ch]' 'include/*.h' 'tests/*.[ch]' 'examples/*.[ch]' 'benchmarks/*.[ch]' \
	    'tools/*.[ch]' | xargs clang-format -i

bench: build
	meson test -C $(BUILD) --benchmark --verbose

clean:
	rm -rf $(BUILD) build-tsan build-asan build-nofutex

# Ganglion: the two commands first.
#   make demo   installs what is missing, builds, and runs the main job on embedded defaults
#   make test   installs, builds and runs every test
.PHONY: demo test deps build build-asan test-asan bench fuzz lint format docs clean

JOBS ?= 2
FUZZ_SECONDS ?= 30
DEMO_SECONDS ?= 60

demo: build
	build/release/bin/ganglion demo --duration $(DEMO_SECONDS)s --examples examples/demo

test: build
	ctest --preset release

deps:
	./scripts/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

build-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (CI runs it).
test-asan: build-asan
	ctest --preset asan

bench: build
	./scripts/bench.sh build/release

fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS) --target fuzz_targets
	./scripts/fuzz.sh build/fuzz $(FUZZ_SECONDS)

lint: deps
	cmake --preset release >/dev/null
	./scripts/lint.sh build/release

format:
	git ls-files '*.h' '*.cc' '*.c' | xargs clang-format -i

# Regenerates the option reference pages from the schemas declared in code.
docs: build
	build/release/bin/ganglion config reference edge > docs/configuration-edge.md
	build/release/bin/ganglion config reference cloud > docs/configuration-cloud.md

clean:
	rm -rf build

# The two Quick-start commands. Both install what is missing (Debian packages), configure, build, then
# run: `make demo` the main job on the embedded default data, `make test` the whole ctest suite.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?= -DTESSERA_WERROR=ON

.PHONY: all deps configure build test demo clean

all: build

deps:
	scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: build
	scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD)

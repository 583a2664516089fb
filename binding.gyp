{
  # node-gyp build (npm run build:gyp): the same sources and the same libtorch resolver as
  # CMakeLists.txt; output in build/Release/difftune.node (cmake-js builds into build-cmake/).
  "targets": [
    {
      "target_name": "difftune",
      "sources": ["<!@(node scripts/sources.js)"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "<!@(node scripts/libtorch.js --gyp include_dirs)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "<!@(node scripts/libtorch.js --gyp defines)"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti", "-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "<!@(node scripts/libtorch.js --gyp cflags)"],
      "libraries": [
        "<!@(node scripts/libtorch.js --gyp ldflags)",
        "<!@(node scripts/libtorch.js --gyp libraries)"
      ]
    }
  ]
}

(module
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get (result i32)))
  (import "wasi:cli/stdin@0.2.0" "get-stdin" (func $getin (result i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "get-out") (result i32) (call $get))
  (func (export "get-in") (result i32) (call $getin))
)

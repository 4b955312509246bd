;; GENERATED from src/guest.core.wat + src/wit (world guest): wasm-tools component embed src/wit -w guest src/guest.core.wat -o e.wasm
;; && wasm-tools component new e.wasm -o c.wasm && wasm-tools strip -a c.wasm -o s.wasm && wasm-tools print s.wasm
(component
  (type (;0;)
    (instance
      (export (;0;) "error" (type (sub resource)))
    )
  )
  (import "wasi:io/error@0.2.0" (instance (;0;) (type 0)))
  (alias export 0 "error" (type (;1;)))
  (type (;2;)
    (instance
      (export (;0;) "output-stream" (type (sub resource)))
      (export (;1;) "input-stream" (type (sub resource)))
      (alias outer 1 1 (type (;2;)))
      (export (;3;) "error" (type (eq 2)))
      (type (;4;) (own 3))
      (type (;5;) (variant (case "last-operation-failed" 4) (case "closed")))
      (export (;6;) "stream-error" (type (eq 5)))
      (type (;7;) (borrow 1))
      (type (;8;) (list u8))
      (type (;9;) (result 8 (error 6)))
      (type (;10;) (func (param "self" 7) (param "len" u64) (result 9)))
      (export (;0;) "[method]input-stream.blocking-read" (func (type 10)))
      (type (;11;) (borrow 0))
      (type (;12;) (result (error 6)))
      (type (;13;) (func (param "self" 11) (param "contents" 8) (result 12)))
      (export (;1;) "[method]output-stream.blocking-write-and-flush" (func (type 13)))
    )
  )
  (import "wasi:io/streams@0.2.0" (instance (;1;) (type 2)))
  (alias export 1 "output-stream" (type (;3;)))
  (alias export 1 "input-stream" (type (;4;)))
  (type (;5;)
    (instance
      (alias outer 1 3 (type (;0;)))
      (export (;1;) "output-stream" (type (eq 0)))
      (alias outer 1 4 (type (;2;)))
      (export (;3;) "input-stream" (type (eq 2)))
      (type (;4;) (own 1))
      (type (;5;) (func (result 4)))
      (export (;0;) "out-stream" (func (type 5)))
      (type (;6;) (own 3))
      (type (;7;) (func (result 6)))
      (export (;1;) "in-stream" (func (type 7)))
    )
  )
  (import "exp:rs/body" (instance (;2;) (type 5)))
  (core module (;0;)
    (type (;0;) (func (result i32)))
    (type (;1;) (func (param i32 i32 i32 i32)))
    (type (;2;) (func (param i32 i64 i32)))
    (type (;3;) (func (param i32)))
    (type (;4;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;5;) (func (param i32) (result i32)))
    (import "exp:rs/body" "out-stream" (func (;0;) (type 0) (result i32)))
    (import "exp:rs/body" "in-stream" (func (;1;) (type 0) (result i32)))
    (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush" (func (;2;) (type 1) (param i32 i32 i32 i32)))
    (import "wasi:io/streams@0.2.0" "[method]input-stream.blocking-read" (func (;3;) (type 2) (param i32 i64 i32)))
    (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream" (func (;4;) (type 3) (param i32)))
    (import "wasi:io/streams@0.2.0" "[resource-drop]input-stream" (func (;5;) (type 3) (param i32)))
    (memory (;0;) 20)
    (global (;0;) (mut i32) i32.const 65536)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 6))
    (export "run" (func 7))
    (export "echo" (func 8))
    (func (;6;) (type 4) (param i32 i32 i32 i32) (result i32)
      (local i32)
      global.get 0
      i32.const 7
      i32.add
      i32.const -8
      i32.and
      local.set 4
      local.get 4
      local.get 3
      i32.add
      global.set 0
      local.get 4
    )
    (func (;7;) (type 5) (param i32) (result i32)
      (local i32 i32)
      call 0
      local.set 1
      block ;; label = @1
        loop ;; label = @2
          local.get 2
          local.get 0
          i32.ge_u
          br_if 1 (;@1;)
          local.get 1
          i32.const 1024
          i32.const 4096
          i32.const 16
          call 2
          local.get 2
          i32.const 1
          i32.add
          local.set 2
          br 0 (;@2;)
        end
      end
      local.get 1
      call 4
      local.get 0
    )
    (func (;8;) (type 0) (result i32)
      (local i32 i32 i32 i32 i32 i32 i32)
      call 1
      local.set 0
      call 0
      local.set 1
      block ;; label = @1
        loop ;; label = @2
          i32.const 65536
          global.set 0
          local.get 0
          i64.const 65536
          i32.const 32
          call 3
          i32.const 32
          i32.load8_u
          br_if 1 (;@1;)
          i32.const 36
          i32.load
          local.set 3
          i32.const 40
          i32.load
          local.set 4
          local.get 2
          local.get 4
          i32.add
          local.set 2
          i32.const 0
          local.set 5
          block ;; label = @3
            loop ;; label = @4
              local.get 5
              local.get 4
              i32.ge_u
              br_if 1 (;@3;)
              local.get 4
              local.get 5
              i32.sub
              local.set 6
              local.get 6
              i32.const 4096
              i32.gt_u
              if ;; label = @5
                i32.const 4096
                local.set 6
              end
              local.get 1
              local.get 3
              local.get 5
              i32.add
              local.get 6
              i32.const 16
              call 2
              local.get 5
              local.get 6
              i32.add
              local.set 5
              br 0 (;@4;)
            end
          end
          br 0 (;@2;)
        end
      end
      local.get 0
      call 5
      local.get 1
      call 4
      local.get 2
    )
  )
  (core module (;1;)
    (type (;0;) (func (param i32 i32 i32 i32)))
    (type (;1;) (func (param i32 i64 i32)))
    (table (;0;) 2 2 funcref)
    (export "0" (func 0))
    (export "1" (func 1))
    (export "$imports" (table 0))
    (func (;0;) (type 0) (param i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 0
      call_indirect (type 0)
    )
    (func (;1;) (type 1) (param i32 i64 i32)
      local.get 0
      local.get 1
      local.get 2
      i32.const 1
      call_indirect (type 1)
    )
  )
  (core instance (;0;) (instantiate 1))
  (alias export 2 "out-stream" (func (;0;)))
  (core func (;0;) (canon lower (func 0)))
  (alias export 2 "in-stream" (func (;1;)))
  (core func (;1;) (canon lower (func 1)))
  (core instance (;1;)
    (export "out-stream" (func 0))
    (export "in-stream" (func 1))
  )
  (alias core export 0 "0" (core func (;2;)))
  (alias core export 0 "1" (core func (;3;)))
  (alias export 1 "output-stream" (type (;6;)))
  (core func (;4;) (canon resource.drop 6))
  (alias export 1 "input-stream" (type (;7;)))
  (core func (;5;) (canon resource.drop 7))
  (core instance (;2;)
    (export "[method]output-stream.blocking-write-and-flush" (func 2))
    (export "[method]input-stream.blocking-read" (func 3))
    (export "[resource-drop]output-stream" (func 4))
    (export "[resource-drop]input-stream" (func 5))
  )
  (core instance (;3;) (instantiate 0
      (with "exp:rs/body" (instance 1))
      (with "wasi:io/streams@0.2.0" (instance 2))
    )
  )
  (alias core export 3 "memory" (core memory (;0;)))
  (core module (;2;)
    (type (;0;) (func (param i32 i32 i32 i32)))
    (type (;1;) (func (param i32 i64 i32)))
    (import "actual" "0" (func (;0;) (type 0) (param i32 i32 i32 i32)))
    (import "actual" "1" (func (;1;) (type 1) (param i32 i64 i32)))
    (import "shim" "$imports" (table (;0;) 2 2 funcref))
    (elem (;0;) (i32.const 0) func 0 1)
  )
  (alias export 1 "[method]output-stream.blocking-write-and-flush" (func (;2;)))
  (core func (;6;) (canon lower (func 2) (memory 0)))
  (alias export 1 "[method]input-stream.blocking-read" (func (;3;)))
  (alias core export 3 "cabi_realloc" (core func (;7;)))
  (core func (;8;) (canon lower (func 3) (memory 0) (realloc 7)))
  (core instance (;4;)
    (export "0" (func 6))
    (export "1" (func 8))
  )
  (core instance (;5;) (instantiate 2
      (with "actual" (instance 4))
      (with "shim" (instance 0))
    )
  )
  (type (;8;) (func (param "n" u32) (result u32)))
  (alias core export 3 "run" (core func (;9;)))
  (func (;4;) (type 8) (canon lift (core func 9)))
  (export (;5;) "run" (func 4))
  (type (;9;) (func (result u32)))
  (alias core export 3 "echo" (core func (;10;)))
  (func (;6;) (type 9) (canon lift (core func 10)))
  (export (;7;) "echo" (func 6))
)

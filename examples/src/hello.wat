;; The bundled demo app: a wasi:http@0.2.0 incoming-handler component in component-text WAT.
;; It answers every request with 200, content-type text/plain and the 16-byte body
;; "Hi from lepton!\n". Derived from tests/fixtures/wat/hello.wat (our own source).
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
      (alias outer 1 1 (type (;1;)))
      (export (;2;) "error" (type (eq 1)))
      (type (;3;) (own 2))
      (type (;4;) (variant (case "last-operation-failed" 3) (case "closed")))
      (export (;5;) "stream-error" (type (eq 4)))
      (type (;6;) (borrow 0))
      (type (;7;) (list u8))
      (type (;8;) (result (error 5)))
      (type (;9;) (func (param "self" 6) (param "contents" 7) (result 8)))
      (export (;0;) "[method]output-stream.blocking-write-and-flush" (func (type 9)))
    )
  )
  (import "wasi:io/streams@0.2.0" (instance (;1;) (type 2)))
  (alias export 1 "output-stream" (type (;3;)))
  (type (;4;)
    (instance
      (export (;0;) "fields" (type (sub resource)))
      (type (;1;) string)
      (export (;2;) "field-key" (type (eq 1)))
      (type (;3;) (list u8))
      (export (;4;) "field-value" (type (eq 3)))
      (type (;5;) (variant (case "invalid-syntax") (case "forbidden") (case "immutable")))
      (export (;6;) "header-error" (type (eq 5)))
      (export (;7;) "headers" (type (eq 0)))
      (export (;8;) "outgoing-response" (type (sub resource)))
      (export (;9;) "outgoing-body" (type (sub resource)))
      (alias outer 1 3 (type (;10;)))
      (export (;11;) "output-stream" (type (eq 10)))
      (export (;12;) "trailers" (type (eq 0)))
      (type (;13;) (option string))
      (type (;14;) (option u16))
      (type (;15;) (record (field "rcode" 13) (field "info-code" 14)))
      (export (;16;) "DNS-error-payload" (type (eq 15)))
      (type (;17;) (option u8))
      (type (;18;) (record (field "alert-id" 17) (field "alert-message" 13)))
      (export (;19;) "TLS-alert-received-payload" (type (eq 18)))
      (type (;20;) (option u32))
      (type (;21;) (record (field "field-name" 13) (field "field-size" 20)))
      (export (;22;) "field-size-payload" (type (eq 21)))
      (type (;23;) (option u64))
      (type (;24;) (option 22))
      (type (;25;) (variant (case "DNS-timeout") (case "DNS-error" 16) (case "destination-not-found") (case "destination-unavailable") (case "destination-IP-prohibited") (case "destination-IP-unroutable") (case "connection-refused") (case "connection-terminated") (case "connection-timeout") (case "connection-read-timeout") (case "connection-write-timeout") (case "connection-limit-reached") (case "TLS-protocol-error") (case "TLS-certificate-error") (case "TLS-alert-received" 19) (case "HTTP-request-denied") (case "HTTP-request-length-required") (case "HTTP-request-body-size" 23) (case "HTTP-request-method-invalid") (case "HTTP-request-URI-invalid") (case "HTTP-request-URI-too-long") (case "HTTP-request-header-section-size" 20) (case "HTTP-request-header-size" 24) (case "HTTP-request-trailer-section-size" 20) (case "HTTP-request-trailer-size" 22) (case "HTTP-response-incomplete") (case "HTTP-response-header-section-size" 20) (case "HTTP-response-header-size" 22) (case "HTTP-response-body-size" 23) (case "HTTP-response-trailer-section-size" 20) (case "HTTP-response-trailer-size" 22) (case "HTTP-response-transfer-coding" 13) (case "HTTP-response-content-coding" 13) (case "HTTP-response-timeout") (case "HTTP-upgrade-failed") (case "HTTP-protocol-error") (case "loop-detected") (case "configuration-error") (case "internal-error" 13)))
      (export (;26;) "error-code" (type (eq 25)))
      (export (;27;) "response-outparam" (type (sub resource)))
      (export (;28;) "incoming-request" (type (sub resource)))
      (type (;29;) (own 0))
      (type (;30;) (func (result 29)))
      (export (;0;) "[constructor]fields" (func (type 30)))
      (type (;31;) (borrow 0))
      (type (;32;) (result (error 6)))
      (type (;33;) (func (param "self" 31) (param "name" 2) (param "value" 4) (result 32)))
      (export (;1;) "[method]fields.append" (func (type 33)))
      (type (;34;) (own 27))
      (type (;35;) (own 8))
      (type (;36;) (result 35 (error 26)))
      (type (;37;) (func (param "param" 34) (param "response" 36)))
      (export (;2;) "[static]response-outparam.set" (func (type 37)))
      (type (;38;) (own 7))
      (type (;39;) (func (param "headers" 38) (result 35)))
      (export (;3;) "[constructor]outgoing-response" (func (type 39)))
      (type (;40;) (borrow 8))
      (type (;41;) (own 9))
      (type (;42;) (result 41))
      (type (;43;) (func (param "self" 40) (result 42)))
      (export (;4;) "[method]outgoing-response.body" (func (type 43)))
      (type (;44;) (borrow 9))
      (type (;45;) (own 11))
      (type (;46;) (result 45))
      (type (;47;) (func (param "self" 44) (result 46)))
      (export (;5;) "[method]outgoing-body.write" (func (type 47)))
      (type (;48;) (own 12))
      (type (;49;) (option 48))
      (type (;50;) (result (error 26)))
      (type (;51;) (func (param "this" 41) (param "trailers" 49) (result 50)))
      (export (;6;) "[static]outgoing-body.finish" (func (type 51)))
    )
  )
  (import "wasi:http/types@0.2.0" (instance (;2;) (type 4)))
  (core module (;0;)
    (type (;0;) (func (result i32)))
    (type (;1;) (func (param i32 i32 i32 i32 i32 i32)))
    (type (;2;) (func (param i32) (result i32)))
    (type (;3;) (func (param i32 i32)))
    (type (;4;) (func (param i32 i32 i32 i32)))
    (type (;5;) (func (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
    (type (;6;) (func (param i32)))
    (type (;7;) (func (param i32 i32 i32 i32) (result i32)))
    (import "wasi:http/types@0.2.0" "[constructor]fields" (func (;0;) (type 0) (result i32)))
    (import "wasi:http/types@0.2.0" "[method]fields.append" (func (;1;) (type 1) (param i32 i32 i32 i32 i32 i32)))
    (import "wasi:http/types@0.2.0" "[constructor]outgoing-response" (func (;2;) (type 2) (param i32) (result i32)))
    (import "wasi:http/types@0.2.0" "[method]outgoing-response.body" (func (;3;) (type 3) (param i32 i32)))
    (import "wasi:http/types@0.2.0" "[method]outgoing-body.write" (func (;4;) (type 3) (param i32 i32)))
    (import "wasi:http/types@0.2.0" "[static]outgoing-body.finish" (func (;5;) (type 4) (param i32 i32 i32 i32)))
    (import "wasi:http/types@0.2.0" "[static]response-outparam.set" (func (;6;) (type 5) (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
    (import "wasi:http/types@0.2.0" "[resource-drop]incoming-request" (func (;7;) (type 6) (param i32)))
    (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush" (func (;8;) (type 4) (param i32 i32 i32 i32)))
    (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream" (func (;9;) (type 6) (param i32)))
    (memory (;0;) 1)
    (global (;0;) (mut i32) i32.const 4096)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 10))
    (export "wasi:http/incoming-handler@0.2.0#handle" (func 11))
    (func (;10;) (type 7) (param i32 i32 i32 i32) (result i32)
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
      global.get 0
      memory.size
      i32.const 65536
      i32.mul
      i32.gt_u
      if ;; label = @1
        local.get 3
        i32.const 16
        i32.shr_u
        i32.const 1
        i32.add
        memory.grow
        i32.const -1
        i32.eq
        if ;; label = @2
          unreachable
        end
      end
      local.get 4
    )
    (func (;11;) (type 3) (param i32 i32)
      (local i32 i32 i32 i32)
      local.get 0
      call 7
      call 0
      local.set 2
      local.get 2
      i32.const 16
      i32.const 12
      i32.const 32
      i32.const 10
      i32.const 1024
      call 1
      local.get 2
      call 2
      local.set 3
      local.get 3
      i32.const 1024
      call 3
      i32.const 1028
      i32.load
      local.set 4
      local.get 1
      i32.const 0
      local.get 3
      i32.const 0
      i64.const 0
      i32.const 0
      i32.const 0
      i32.const 0
      i32.const 0
      call 6
      local.get 4
      i32.const 1024
      call 4
      i32.const 1028
      i32.load
      local.set 5
      local.get 5
      i32.const 48
      i32.const 16
      i32.const 1024
      call 8
      local.get 5
      call 9
      local.get 4
      i32.const 0
      i32.const 0
      i32.const 1024
      call 5
    )
    (data (;0;) (i32.const 16) "content-type")
    (data (;1;) (i32.const 32) "text/plain")
    (data (;2;) (i32.const 48) "Hi from lepton!\0a")
  )
  (core module (;1;)
    (type (;0;) (func (param i32 i32 i32 i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (type (;2;) (func (param i32 i32 i32 i32)))
    (type (;3;) (func (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
    (table (;0;) 6 6 funcref)
    (export "0" (func 0))
    (export "1" (func 1))
    (export "2" (func 2))
    (export "3" (func 3))
    (export "4" (func 4))
    (export "5" (func 5))
    (export "$imports" (table 0))
    (func (;0;) (type 0) (param i32 i32 i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      local.get 4
      local.get 5
      i32.const 0
      call_indirect (type 0)
    )
    (func (;1;) (type 1) (param i32 i32)
      local.get 0
      local.get 1
      i32.const 1
      call_indirect (type 1)
    )
    (func (;2;) (type 1) (param i32 i32)
      local.get 0
      local.get 1
      i32.const 2
      call_indirect (type 1)
    )
    (func (;3;) (type 2) (param i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 3
      call_indirect (type 2)
    )
    (func (;4;) (type 3) (param i32 i32 i32 i32 i64 i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      local.get 4
      local.get 5
      local.get 6
      local.get 7
      local.get 8
      i32.const 4
      call_indirect (type 3)
    )
    (func (;5;) (type 2) (param i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 5
      call_indirect (type 2)
    )
  )
  (core instance (;0;) (instantiate 1))
  (alias export 2 "incoming-request" (type (;5;)))
  (alias export 2 "response-outparam" (type (;6;)))
  (alias export 2 "[constructor]fields" (func (;0;)))
  (core func (;0;) (canon lower (func 0)))
  (alias core export 0 "0" (core func (;1;)))
  (alias export 2 "[constructor]outgoing-response" (func (;1;)))
  (core func (;2;) (canon lower (func 1)))
  (alias core export 0 "1" (core func (;3;)))
  (alias core export 0 "2" (core func (;4;)))
  (alias core export 0 "3" (core func (;5;)))
  (alias core export 0 "4" (core func (;6;)))
  (alias export 2 "incoming-request" (type (;7;)))
  (core func (;7;) (canon resource.drop 7))
  (core instance (;1;)
    (export "[constructor]fields" (func 0))
    (export "[method]fields.append" (func 1))
    (export "[constructor]outgoing-response" (func 2))
    (export "[method]outgoing-response.body" (func 3))
    (export "[method]outgoing-body.write" (func 4))
    (export "[static]outgoing-body.finish" (func 5))
    (export "[static]response-outparam.set" (func 6))
    (export "[resource-drop]incoming-request" (func 7))
  )
  (alias core export 0 "5" (core func (;8;)))
  (alias export 1 "output-stream" (type (;8;)))
  (core func (;9;) (canon resource.drop 8))
  (core instance (;2;)
    (export "[method]output-stream.blocking-write-and-flush" (func 8))
    (export "[resource-drop]output-stream" (func 9))
  )
  (core instance (;3;) (instantiate 0
      (with "wasi:http/types@0.2.0" (instance 1))
      (with "wasi:io/streams@0.2.0" (instance 2))
    )
  )
  (alias core export 3 "memory" (core memory (;0;)))
  (core module (;2;)
    (type (;0;) (func (param i32 i32 i32 i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (type (;2;) (func (param i32 i32 i32 i32)))
    (type (;3;) (func (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
    (import "actual" "0" (func (;0;) (type 0) (param i32 i32 i32 i32 i32 i32)))
    (import "actual" "1" (func (;1;) (type 1) (param i32 i32)))
    (import "actual" "2" (func (;2;) (type 1) (param i32 i32)))
    (import "actual" "3" (func (;3;) (type 2) (param i32 i32 i32 i32)))
    (import "actual" "4" (func (;4;) (type 3) (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
    (import "actual" "5" (func (;5;) (type 2) (param i32 i32 i32 i32)))
    (import "shim" "$imports" (table (;0;) 6 6 funcref))
    (elem (;0;) (i32.const 0) func 0 1 2 3 4 5)
  )
  (alias export 2 "[method]fields.append" (func (;2;)))
  (core func (;10;) (canon lower (func 2) (memory 0) string-encoding=utf8))
  (alias export 2 "[method]outgoing-response.body" (func (;3;)))
  (core func (;11;) (canon lower (func 3) (memory 0)))
  (alias export 2 "[method]outgoing-body.write" (func (;4;)))
  (core func (;12;) (canon lower (func 4) (memory 0)))
  (alias export 2 "[static]outgoing-body.finish" (func (;5;)))
  (alias core export 3 "cabi_realloc" (core func (;13;)))
  (core func (;14;) (canon lower (func 5) (memory 0) (realloc 13) string-encoding=utf8))
  (alias export 2 "[static]response-outparam.set" (func (;6;)))
  (core func (;15;) (canon lower (func 6) (memory 0) string-encoding=utf8))
  (alias export 1 "[method]output-stream.blocking-write-and-flush" (func (;7;)))
  (core func (;16;) (canon lower (func 7) (memory 0)))
  (core instance (;4;)
    (export "0" (func 10))
    (export "1" (func 11))
    (export "2" (func 12))
    (export "3" (func 14))
    (export "4" (func 15))
    (export "5" (func 16))
  )
  (core instance (;5;) (instantiate 2
      (with "actual" (instance 4))
      (with "shim" (instance 0))
    )
  )
  (type (;9;) (own 5))
  (type (;10;) (own 6))
  (type (;11;) (func (param "request" 9) (param "response-out" 10)))
  (alias core export 3 "wasi:http/incoming-handler@0.2.0#handle" (core func (;17;)))
  (func (;8;) (type 11) (canon lift (core func 17)))
  (component (;0;)
    (import "import-type-incoming-request" (type (;0;) (sub resource)))
    (import "import-type-response-outparam" (type (;1;) (sub resource)))
    (import "import-type-incoming-request0" (type (;2;) (eq 0)))
    (type (;3;) (own 2))
    (import "import-type-response-outparam0" (type (;4;) (eq 1)))
    (type (;5;) (own 4))
    (type (;6;) (func (param "request" 3) (param "response-out" 5)))
    (import "import-func-handle" (func (;0;) (type 6)))
    (export (;7;) "incoming-request" (type 0))
    (export (;8;) "response-outparam" (type 1))
    (type (;9;) (own 7))
    (type (;10;) (own 8))
    (type (;11;) (func (param "request" 9) (param "response-out" 10)))
    (export (;1;) "handle" (func 0) (func (type 11)))
  )
  (instance (;3;) (instantiate 0
      (with "import-func-handle" (func 8))
      (with "import-type-incoming-request" (type 5))
      (with "import-type-response-outparam" (type 6))
      (with "import-type-incoming-request0" (type 5))
      (with "import-type-response-outparam0" (type 6))
    )
  )
  (export (;4;) "wasi:http/incoming-handler@0.2.0" (instance 3))
)

//! Emulator tests: hand-written byte strings whose meaning CPython's `pickletools` documents, and streams
//! written by the independent builder in `aegis-test-support` (benign files as real libraries write them,
//! malicious ones for every technique).

use std::io::{self, Read};

use aegis_test_support::pickle::{self as tp, PickleBuilder, COMMAND};

use super::{emulate, AnomalyKind, CallKind, Emulator, Trace, Value};
use crate::Limits;

fn run(bytes: &[u8]) -> Trace {
    emulate(bytes, &Limits::default()).expect("no IO error on a slice")
}

fn run_with(bytes: &[u8], limits: &Limits) -> Trace {
    emulate(bytes, limits).expect("no IO error on a slice")
}

fn globals(trace: &Trace) -> Vec<(String, String)> {
    trace
        .globals
        .iter()
        .map(|g| (g.module.clone(), g.name.clone()))
        .collect()
}

fn has_global(trace: &Trace, module: &str, name: &str) -> bool {
    trace
        .globals
        .iter()
        .any(|g| g.module == module && g.name == name)
}

fn kinds(trace: &Trace) -> Vec<AnomalyKind> {
    trace.anomalies.iter().map(|a| a.kind).collect()
}

/// Whether some call (other than BUILD) has `module.name` as its callee.
fn has_dynamic_global(trace: &Trace) -> bool {
    trace.globals.iter().any(|g| g.dynamic)
}

fn calls_global(trace: &Trace, module: &str, name: &str) -> bool {
    trace
        .calls
        .iter()
        .any(|c| c.kind != CallKind::Build && c.callee.as_global() == Some((module, name)))
}

/// Emulate `body` as the argument of a call to `t.probe` and return the argument the probe received.
fn probe(body: &[u8]) -> Value {
    let mut bytes = b"\x80\x05ct\nprobe\n".to_vec();
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"\x85R.");
    let trace = run(&bytes);
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    let call = trace
        .calls
        .iter()
        .find(|c| c.callee.as_global() == Some(("t", "probe")))
        .expect("probe called");
    call.args
        .items()
        .and_then(|items| items.into_iter().next())
        .expect("one argument")
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an int: {other:?}"),
    }
}

// ----- CPython's own bytes -----

#[test]
fn cpython_protocol0_list() {
    // pickle.dumps([1, 2], protocol=0)
    let trace = run(b"(lp0\nI1\naI2\na.");
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(trace.pickles, 1);
    assert_eq!(trace.protocol, Some(0));
    assert_eq!(trace.opcodes, 8);
    assert_eq!(trace.bytes, 14);
}

#[test]
fn cpython_protocol1_dict_and_text_bool() {
    // pickle.dumps({'a': (1, 2.5, None, True)}, protocol=1): True is `I01\n`.
    let v =
        probe(b"}q\x00X\x01\x00\x00\x00aq\x01(K\x01G@\x04\x00\x00\x00\x00\x00\x00NI01\ntq\x02s");
    assert_eq!(v.render(100), "{\"a\": (1, 2.5, None, True)}");
    assert_eq!(
        run(b"}q\x00X\x01\x00\x00\x00aq\x01(K\x01G@\x04\x00\x00\x00\x00\x00\x00NI01\ntq\x02s.")
            .protocol,
        Some(1)
    );
}

#[test]
fn cpython_protocol2_codecs_and_longs() {
    // pickle.dumps({'k': [b'x', 'y', -70000, 2**70]}, protocol=2)
    let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00kq\x01]q\x02(c_codecs\nencode\nq\x03X\x01\x00\x00\x00xq\x04X\x06\x00\x00\x00latin1q\x05\x86q\x06Rq\x07X\x01\x00\x00\x00yq\x08J\x90\xee\xfe\xff\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00@es.";
    let trace = run(bytes);
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(
        globals(&trace),
        vec![("_codecs".to_owned(), "encode".to_owned())]
    );
    let body = bytes.get(2..bytes.len() - 1).unwrap();
    let v = probe(body);
    assert_eq!(
        v.render(200),
        "{\"k\": [b'x', \"y\", -70000, <int of 9 bytes>]}"
    );
}

#[test]
fn cpython_protocol5_sets_bytes_and_frames() {
    // pickle.dumps(({1}, frozenset([2]), b'ab', bytearray(b'c')), protocol=5)
    let bytes = b"\x80\x05\x95\x1f\x00\x00\x00\x00\x00\x00\x00(\x8f\x94(K\x01\x90(K\x02\x91\x94C\x02ab\x94\x96\x01\x00\x00\x00\x00\x00\x00\x00c\x94t\x94.";
    let trace = run(bytes);
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(trace.protocol, Some(5));
    let v = probe(bytes.get(11..bytes.len() - 1).unwrap());
    assert_eq!(v.render(200), "({1}, {2}, b'ab', b'c')");
}

#[test]
fn cpython_protocol0_text_escapes_and_numbers() {
    // pickle.dumps(('\u00e9\n', 'a\\b'), protocol=0) and pickle.dumps((1.5, -3, 2**64), protocol=0)
    let v = probe(b"(V\xe9\\u000a\np0\nVa\\u005cb\np1\ntp2\n");
    let items = v.items().unwrap();
    assert_eq!(items[0].as_str(), Some("é\n"));
    assert_eq!(items[1].as_str(), Some("a\\b"));
    let v = probe(b"(F1.5\nI-3\nL18446744073709551616L\ntp0\n");
    let items = v.items().unwrap();
    assert!(matches!(items[0], Value::Float(f) if f == 1.5));
    assert_eq!(int(&items[1]), -3);
    assert!(matches!(&items[2], Value::BigInt(b) if **b == [0, 0, 0, 0, 0, 0, 0, 0, 1]));
}

#[test]
fn cpython_self_referencing_list() {
    // x = []; x.append(x); pickle.dumps(x, protocol=2)
    let trace = run(b"\x80\x02]q\x00h\x00a.");
    assert!(trace.anomalies.is_empty());
    let v = probe(b"]q\x00h\x00a");
    assert!(v.render(100).len() < 100);
}

#[test]
fn os_system_reduce_is_recorded_exactly() {
    let bytes = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
    let trace = run(bytes);
    assert!(trace.anomalies.is_empty());
    assert_eq!(trace.globals.len(), 1);
    let g = &trace.globals[0];
    assert_eq!(
        (
            g.module.as_str(),
            g.name.as_str(),
            g.offset,
            g.opcode,
            g.dynamic
        ),
        ("os", "system", 2, "GLOBAL", false)
    );
    assert_eq!(trace.calls.len(), 1);
    let call = &trace.calls[0];
    assert_eq!(call.kind, CallKind::Reduce);
    assert_eq!(
        call.offset,
        bytes.iter().position(|b| *b == b'R').unwrap() as u64
    );
    assert_eq!(call.args.render(50), "(\"id\")");
}

// ----- opcode families -----

#[test]
fn integer_opcodes() {
    let mut b = PickleBuilder::new();
    b.mark()
        .binint(-5)
        .binint1(200)
        .binint2(65535)
        .long1(&[0xff, 0x7f])
        .long4(&[0x00, 0x80]);
    b.int_text(42)
        .long_text(-7)
        .raw(b"I0x1f\n")
        .raw(b"I00\n")
        .long1(&[])
        .tuple();
    let v = probe(&b.into_bytes());
    let items = v.items().unwrap();
    let ints: Vec<i64> = items.iter().take(8).map(int).collect();
    assert_eq!(ints, vec![-5, 200, 65535, 32767, -32768, 42, -7, 31]);
    assert!(matches!(items[8], Value::Bool(false)));
    assert_eq!(int(&items[9]), 0);
}

#[test]
fn float_and_constant_opcodes() {
    let mut b = PickleBuilder::new();
    b.mark()
        .binfloat(-0.5)
        .float_text(3.25)
        .none()
        .bool(true)
        .bool(false)
        .tuple();
    let v = probe(&b.into_bytes());
    assert_eq!(v.render(100), "(-0.5, 3.25, None, True, False)");
}

#[test]
fn string_opcodes() {
    let mut b = PickleBuilder::new();
    b.mark()
        .string(b"a'b\n")
        .binstring(b"bin")
        .short_binstring(b"\xff\x00");
    b.unicode("caf\u{e9}")
        .binunicode("x")
        .short_binunicode("y")
        .binunicode8("z")
        .tuple();
    let v = probe(&b.into_bytes());
    let items = v.items().unwrap();
    assert_eq!(items[0].as_str(), Some("a'b\n"));
    assert_eq!(items[1].as_str(), Some("bin"));
    assert_eq!(items[2].as_bytes(), Some(&b"\xff\x00"[..]));
    let texts: Vec<&str> = items[3..].iter().filter_map(Value::as_str).collect();
    assert_eq!(texts, vec!["café", "x", "y", "z"]);
}

#[test]
fn bytes_opcodes() {
    let mut b = PickleBuilder::new();
    b.mark()
        .binbytes(b"one")
        .short_binbytes(b"two")
        .binbytes8(b"three")
        .bytearray8(b"four")
        .tuple();
    let v = probe(&b.into_bytes());
    let items: Vec<Vec<u8>> = v
        .items()
        .unwrap()
        .iter()
        .map(|i| i.as_bytes().unwrap().to_vec())
        .collect();
    assert_eq!(
        items,
        vec![
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec(),
            b"four".to_vec()
        ]
    );
}

#[test]
fn tuple_list_dict_set_opcodes() {
    let mut b = PickleBuilder::new();
    b.mark();
    b.empty_tuple()
        .int(1)
        .tuple1()
        .int(1)
        .int(2)
        .tuple2()
        .int(1)
        .int(2)
        .int(3)
        .tuple3();
    b.mark()
        .int(4)
        .int(5)
        .list()
        .empty_list()
        .int(6)
        .append()
        .mark()
        .int(7)
        .int(8)
        .appends()
        .tuple2();
    b.mark()
        .text("a")
        .int(1)
        .dict()
        .empty_dict()
        .text("b")
        .int(2)
        .setitem()
        .mark()
        .text("c")
        .int(3)
        .setitems()
        .tuple2();
    b.empty_set()
        .mark()
        .int(9)
        .additems()
        .mark()
        .int(10)
        .frozenset()
        .tuple2();
    b.tuple();
    let v = probe(&b.into_bytes());
    assert_eq!(
        v.render(300),
        "((), (1), (1, 2), (1, 2, 3), ([4, 5], [6, 7, 8]), ({\"a\": 1}, {\"b\": 2, \"c\": 3}), ({9}, {10}))"
    );
}

#[test]
fn stack_opcodes() {
    let mut b = PickleBuilder::new();
    // DUP, POP, POP_MARK, and POP on an empty mark frame pops the mark (load_pop).
    b.mark()
        .int(1)
        .dup()
        .int(9)
        .pop()
        .mark()
        .int(7)
        .int(8)
        .pop_mark()
        .mark()
        .pop()
        .tuple();
    let v = probe(&b.into_bytes());
    assert_eq!(v.render(100), "(1, 1)");
}

#[test]
fn memo_opcodes() {
    let mut b = PickleBuilder::new();
    b.mark()
        .text("a")
        .put(7)
        .text("b")
        .binput(3)
        .text("c")
        .long_binput(70_000)
        .text("d")
        .memoize();
    b.get(7).binget(3).long_binget(70_000).binget(3).tuple();
    let v = probe(&b.into_bytes());
    // MEMOIZE stores at len(memo) = 3, overwriting "b".
    assert_eq!(
        v.render(100),
        "(\"a\", \"b\", \"c\", \"d\", \"a\", \"d\", \"c\", \"d\")"
    );
}

#[test]
fn persistent_ids() {
    let mut b = PickleBuilder::new();
    b.mark().persid("storage0").text("k").binpersid().tuple();
    let trace = run(&[b"\x80\x04ct\nprobe\n".as_slice(), &b.to_vec(), b"\x85R."].concat());
    assert_eq!(trace.persistent_ids, 2);
    assert_eq!(
        trace.calls[0].args.render(100),
        "((persistent_load(\"storage0\"), persistent_load(\"k\")))"
    );
}

#[test]
fn buffers_and_frames() {
    let mut b = PickleBuilder::new();
    b.proto(5)
        .frame(4)
        .next_buffer()
        .readonly_buffer()
        .pop()
        .none()
        .stop();
    let trace = run(&b.into_bytes());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(trace.protocol, Some(5));
}

#[test]
fn ext_opcodes_are_dynamic_globals() {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .ext1(1)
        .pop()
        .ext2(513)
        .pop()
        .ext4(-7)
        .empty_tuple()
        .reduce()
        .stop();
    let trace = run(&b.into_bytes());
    let exts: Vec<(&str, &str, &str, bool)> = trace
        .globals
        .iter()
        .map(|g| (g.module.as_str(), g.name.as_str(), g.opcode, g.dynamic))
        .collect();
    assert_eq!(
        exts,
        vec![
            ("copyreg.extension", "1", "EXT1", true),
            ("copyreg.extension", "513", "EXT2", true),
            ("copyreg.extension", "-7", "EXT4", true)
        ]
    );
    assert!(calls_global(&trace, "copyreg.extension", "-7"));
}

#[test]
fn instantiation_opcodes() {
    let mut b = PickleBuilder::new();
    b.proto(4).mark();
    b.mark().int(1).inst("m", "Inst");
    b.mark().global("m", "Obj").int(2).obj();
    b.global("m", "New").int(3).tuple1().newobj();
    b.global("m", "NewEx")
        .int(4)
        .tuple1()
        .empty_dict()
        .text("k")
        .int(5)
        .setitem()
        .newobj_ex();
    b.tuple().stop();
    let trace = run(&b.into_bytes());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    let calls: Vec<(CallKind, String, String)> = trace
        .calls
        .iter()
        .map(|c| (c.kind, c.callee.render(40), c.args.render(60)))
        .collect();
    assert_eq!(
        calls,
        vec![
            (CallKind::Inst, "m.Inst".to_owned(), "(1)".to_owned()),
            (CallKind::Obj, "m.Obj".to_owned(), "(2)".to_owned()),
            (CallKind::NewObj, "m.New".to_owned(), "(3)".to_owned()),
            (
                CallKind::NewObjEx,
                "m.NewEx".to_owned(),
                "((4), {\"k\": 5})".to_owned()
            ),
        ]
    );
    assert_eq!(trace.globals[0].opcode, "INST");
}

#[test]
fn build_records_state_and_slot_state() {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("m", "C")
        .empty_tuple()
        .newobj()
        .empty_dict()
        .binunicode("a")
        .int(1)
        .setitem()
        .build();
    b.none()
        .empty_dict()
        .binunicode("s")
        .int(2)
        .setitem()
        .tuple2()
        .build()
        .stop();
    let trace = run(&b.into_bytes());
    let builds: Vec<(bool, String)> = trace
        .calls
        .iter()
        .filter(|c| c.kind == CallKind::Build)
        .map(|c| (c.slot_state, c.args.render(60)))
        .collect();
    assert_eq!(
        builds,
        vec![
            (false, "{\"a\": 1}".to_owned()),
            (true, "(None, {\"s\": 2})".to_owned())
        ]
    );
    // The object's callee snapshot shows what was built.
    assert!(matches!(&trace.calls[1].callee, Value::Object(_)));
}

// ----- streams -----

#[test]
fn memo_resets_at_each_stop() {
    let trace = run(&tp::memo_collision_second_pickle());
    assert_eq!(trace.pickles, 2);
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert!(has_global(&trace, "os", "system"));
    assert!(calls_global(&trace, "os", "system"));
    // A GET of an index only the first pickle stored is a miss in the second.
    let mut b = PickleBuilder::new();
    b.proto(2).none().binput(0).stop().proto(2).binget(0).stop();
    let trace = run(&b.into_bytes());
    assert_eq!(kinds(&trace)[0], AnomalyKind::MemoMiss);
}

/// `STACK_GLOBAL` needs two `str`s; an instance of a class (joblib's nested pickles read with the outer
/// memo give it one) makes every loader raise, so it is not a "dynamic global". A name computed by a call can
/// be a str and still is one.
#[test]
fn stack_global_of_a_non_string_ends_the_pickle() {
    let mut b = PickleBuilder::new();
    b.proto(4)
        .stack_global_of("sklearn.pipeline", "Pipeline")
        .empty_tuple()
        .newobj()
        .unicode("dtype")
        .stack_global()
        .stop();
    let trace = run(&b.into_bytes());
    assert!(kinds(&trace).contains(&AnomalyKind::TypeConfusion));
    assert!(!has_dynamic_global(&trace), "{:?}", trace.globals);
    // Negative: a module name returned by a call may be a str, so it is a dynamic global.
    let mut b = PickleBuilder::new();
    b.proto(4)
        .stack_global_of("builtins", "getattr")
        .empty_tuple()
        .reduce()
        .unicode("system")
        .stack_global()
        .stop();
    let trace = run(&b.into_bytes());
    assert!(has_dynamic_global(&trace), "{:?}", trace.globals);
}

/// Where this emulator cannot be sure a value is not a str, or that a store did not happen, it must not stop:
/// a stop there would hide what CPython runs next (review of the two rules above).
#[test]
fn a_stop_is_only_where_cpython_surely_raises() {
    // `PUT` with a vertical tab before its index: CPython's int() skips it and stores; the GET then hits.
    let trace = run(b"\x80\x02Np\x0b7\n0h\x070cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
    assert!(
        calls_global(&trace, "os", "system"),
        "{:?}",
        trace.anomalies
    );
    // A `PUT` index longer than the kept line: the same.
    let mut bytes = b"\x80\x02Np".to_vec();
    bytes.extend_from_slice(&[b' '; 5000]);
    bytes.extend_from_slice(b"7\n0h\x070cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
    assert!(calls_global(&run(&bytes), "os", "system"));
    // OBJ calls any callable: `copyreg._reconstructor(str, str, "os")` is the str "os".
    let trace = run(
        b"\x80\x04(ccopyreg\n_reconstructor\ncbuiltins\nstr\ncbuiltins\nstr\nX\x02\x00\x00\x00osoX\x06\x00\x00\x00system\x93.",
    );
    assert!(
        trace
            .globals
            .iter()
            .any(|g| g.dynamic || (g.module == "os" && g.name == "system")),
        "{:?}",
        trace.globals
    );
    // NEWOBJ of a name of str (`basestring` is `str` after Python 2 name mapping).
    let trace = run(
        b"\x80\x02c__builtin__\nbasestring\nX\x02\x00\x00\x00os\x85\x81X\x06\x00\x00\x00system\x93.",
    );
    assert!(has_dynamic_global(&trace), "{:?}", trace.globals);
}

/// Every real unpickler raises on a memo index never stored: what follows the miss never runs, so it is not
/// reported as called (joblib's nested object-array pickles, read as plain `pickle.load` would, used to turn
/// into "dynamic globals" built from the misses). What ran before the miss still counts.
#[test]
fn a_memo_miss_ends_the_pickle() {
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("os", "system")
        .binget(7)
        .tuple1()
        .reduce()
        .stop();
    let trace = run(&b.into_bytes());
    assert!(kinds(&trace).contains(&AnomalyKind::MemoMiss));
    assert!(
        has_global(&trace, "os", "system"),
        "the import before the miss ran"
    );
    assert!(
        !calls_global(&trace, "os", "system"),
        "the call after it did not"
    );
    // Positive twin: the same call with the argument stored first is a call.
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("os", "system")
        .unicode("id")
        .binput(7)
        .pop()
        .binget(7)
        .tuple1()
        .reduce()
        .stop();
    let trace = run(&b.into_bytes());
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn put_memoize_mix_follows_len_memo() {
    let trace = run(&tp::put_memoize_mix());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert!(calls_global(&trace, "collections", "OrderedDict"));
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn stack_global_from_memoized_strings() {
    let trace = run(&tp::stack_global_memoized());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    let g = trace.globals.iter().find(|g| g.name == "system").unwrap();
    assert_eq!(
        (g.module.as_str(), g.opcode, g.dynamic),
        ("os", "STACK_GLOBAL", false)
    );
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn dynamic_stack_global_is_recorded_and_called() {
    let trace = run(&tp::stack_global_runtime_name());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert!(has_global(&trace, "builtins", "str.join"));
    let dynamic: Vec<_> = trace.globals.iter().filter(|g| g.dynamic).collect();
    assert_eq!(dynamic.len(), 1);
    assert!(
        dynamic[0].module.starts_with("<builtins.str.join"),
        "{}",
        dynamic[0].module
    );
    assert_eq!(dynamic[0].name, "system");
    let called = trace.calls.iter().any(|c| {
        c.kind == CallKind::Reduce
            && c.callee.as_global() == Some((dynamic[0].module.as_str(), "system"))
    });
    assert!(called, "the REDUCE on the dynamic global is a call");
}

#[test]
fn rot13_name_resolves_statically() {
    let trace = run(&tp::stack_global_rot13_name());
    assert!(trace
        .globals
        .iter()
        .any(|g| g.module == "os" && g.name == "system" && !g.dynamic));
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn dotted_names_are_kept_whole() {
    let trace = run(&tp::dotted_glob_os_system());
    assert!(has_global(&trace, "glob", "os.system"));
    assert!(calls_global(&trace, "glob", "os.system"));
}

#[test]
fn getattr_import_chain_resolves_the_callee() {
    let trace = run(&tp::getattr_import_chain());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(
        globals(&trace),
        vec![
            ("builtins".to_owned(), "getattr".to_owned()),
            ("builtins".to_owned(), "__import__".to_owned())
        ]
    );
    let call = trace
        .calls
        .iter()
        .find(|c| c.callee.as_global() == Some(("os", "system")))
        .unwrap();
    assert_eq!(call.args.items().unwrap()[0].as_str(), Some(COMMAND));
}

#[test]
fn nested_payloads_are_resolved_to_bytes() {
    let inner = tp::os_system(COMMAND);
    for bytes in [
        tp::nested_pickle_loads(),
        tp::nested_base64_loads(),
        tp::torch_load_from_bytes(),
    ] {
        let trace = run(&bytes);
        assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
        let call = trace
            .calls
            .iter()
            .find(|c| {
                matches!(
                    c.callee.as_global(),
                    Some((_, "loads" | "_load_from_bytes"))
                )
            })
            .unwrap();
        assert_eq!(
            call.args.items().unwrap()[0].as_bytes(),
            Some(inner.as_slice())
        );
    }
}

#[test]
fn every_pure_function_evaluates_inside_the_vm() {
    let z = tp::zlib(b"payload");
    let cases: Vec<(&str, &str, Vec<u8>, &[u8])> = vec![
        (
            "base64",
            "b64decode",
            b"X\x04\x00\x00\x00aWQ=\x85".to_vec(),
            b"id",
        ),
        (
            "base64",
            "standard_b64decode",
            b"X\x04\x00\x00\x00aWQ=\x85".to_vec(),
            b"id",
        ),
        (
            "base64",
            "urlsafe_b64decode",
            b"X\x04\x00\x00\x00-_8=\x85".to_vec(),
            b"\xfb\xff",
        ),
        (
            "base64",
            "b32decode",
            b"X\x08\x00\x00\x00NFSA====\x85".to_vec(),
            b"id",
        ),
        (
            "base64",
            "b16decode",
            b"X\x04\x00\x00\x006964\x85".to_vec(),
            b"id",
        ),
        (
            "base64",
            "b85decode",
            b"X\x03\x00\x00\x00X=D\x85".to_vec(),
            b"id",
        ),
        (
            "base64",
            "a85decode",
            b"X\x03\x00\x00\x00Bk.\x85".to_vec(),
            b"id",
        ),
        (
            "binascii",
            "a2b_base64",
            b"X\x04\x00\x00\x00aWQ=\x85".to_vec(),
            b"id",
        ),
        (
            "binascii",
            "a2b_hex",
            b"X\x04\x00\x00\x006964\x85".to_vec(),
            b"id",
        ),
        ("binascii", "unhexlify", b"C\x046964\x85".to_vec(), b"id"),
        (
            "builtins",
            "bytes.fromhex",
            b"X\x05\x00\x00\x0069 64\x85".to_vec(),
            b"id",
        ),
        ("builtins", "bytes", b"]K\x69K\x64\x86a\x85".to_vec(), b""),
        ("builtins", "bytearray", b"(K\x69K\x64l\x85".to_vec(), b"id"),
        (
            "builtins",
            "str.encode",
            b"X\x02\x00\x00\x00idX\x05\x00\x00\x00ascii\x86".to_vec(),
            b"id",
        ),
        (
            "__builtin__",
            "bytes",
            b"X\x02\x00\x00\x00idX\x06\x00\x00\x00latin1\x86".to_vec(),
            b"id",
        ),
        (
            "codecs",
            "decode",
            b"C\x046964X\x03\x00\x00\x00hex\x86".to_vec(),
            b"id",
        ),
        (
            "_codecs",
            "encode",
            b"X\x02\x00\x00\x00idX\x06\x00\x00\x00latin1\x86".to_vec(),
            b"id",
        ),
    ];
    for (module, name, args, expected) in cases {
        let mut bytes = b"\x80\x03ct\nprobe\n".to_vec();
        bytes.extend_from_slice(format!("c{module}\n{name}\n").as_bytes());
        bytes.extend_from_slice(&args);
        bytes.extend_from_slice(b"R\x85R.");
        let trace = run(&bytes);
        let call = trace
            .calls
            .iter()
            .find(|c| c.callee.as_global() == Some(("t", "probe")))
            .unwrap();
        let got = call.args.items().unwrap()[0].clone();
        if name == "bytes" && module == "builtins" {
            // bytes(list) where the list holds one tuple: not evaluable, stays an object.
            assert!(matches!(got, Value::Object(_)), "{module}.{name}: {got:?}");
            continue;
        }
        assert_eq!(got.as_bytes(), Some(expected), "{module}.{name}: {got:?}");
        assert!(
            calls_global(&trace, module, name),
            "the evaluated call is still recorded"
        );
    }
    // zlib.decompress and codecs.decode(…, 'zlib')
    let mut b = PickleBuilder::new();
    b.proto(3)
        .global("t", "probe")
        .global("zlib", "decompress")
        .bytes(&z)
        .tuple1()
        .reduce();
    b.global("codecs", "decode")
        .bytes(&z)
        .binunicode("zlib")
        .tuple2()
        .reduce()
        .tuple2()
        .reduce()
        .stop();
    let trace = run(&b.into_bytes());
    let args = trace
        .calls
        .iter()
        .find(|c| c.callee.as_global() == Some(("t", "probe")))
        .unwrap()
        .args
        .items()
        .unwrap();
    let both: Vec<Option<&[u8]>> = args.iter().map(Value::as_bytes).collect();
    assert_eq!(both, vec![Some(&b"payload"[..]), Some(&b"payload"[..])]);
    // __import__ and importlib give module references; getattr walks them.
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("t", "probe")
        .global("importlib", "import_module")
        .binunicode("subprocess")
        .tuple1()
        .reduce();
    b.tuple1().reduce().stop();
    let trace = run(&b.into_bytes());
    let arg = trace
        .calls
        .iter()
        .find(|c| c.callee.as_global() == Some(("t", "probe")))
        .unwrap()
        .args
        .items()
        .unwrap();
    assert_eq!(arg[0].as_global(), Some(("subprocess", "")));
}

#[test]
fn incomplete_constants_are_not_evaluated() {
    let limits = Limits {
        max_kept_constant: 8,
        ..Limits::default()
    };
    let mut b = PickleBuilder::new();
    b.proto(2)
        .global("base64", "b64decode")
        .binunicode("aWQ9aWQ9aWQ9aWQ9")
        .tuple1()
        .reduce()
        .stop();
    let trace = run_with(&b.into_bytes(), &limits);
    assert_eq!(trace.calls.len(), 1);
    let arg = &trace.calls[0].args.items().unwrap()[0];
    assert!(matches!(arg, Value::Str { text, len: 16 } if text.len() == 8));
}

#[test]
fn multi_pickle_streams_and_trailing_data() {
    let trace = run(&tp::two_plain_pickles());
    assert_eq!(trace.pickles, 2);
    assert!(trace.anomalies.is_empty());
    let mut bytes = tp::two_plain_pickles();
    bytes.extend_from_slice(b"\n\x00\x00 trailing junk \xff\xff");
    let trace = run(&bytes);
    assert_eq!(trace.pickles, 2);
    assert_eq!(kinds(&trace), vec![AnomalyKind::TrailingData]);
    assert_eq!(
        trace.anomalies[0].offset,
        tp::two_plain_pickles().len() as u64
    );
    // A protocol 0 pickle after a STOP is a pickle, not trailing data.
    let mut bytes = tp::two_plain_pickles();
    bytes.extend_from_slice(&tp::posix_system_proto0("id"));
    let trace = run(&bytes);
    assert_eq!(trace.pickles, 3);
    assert!(trace.anomalies.is_empty());
    assert!(has_global(&trace, "posix", "system"));
    // Junk that starts with opcodes but never reaches STOP is still one anomaly.
    let mut bytes = tp::two_plain_pickles();
    bytes.extend_from_slice(b"N)ab");
    assert_eq!(kinds(&run(&bytes)), vec![AnomalyKind::TrailingData]);
}

#[test]
fn resynchronises_after_garbage() {
    let trace = run(&tp::payload_after_garbage());
    assert_eq!(
        kinds(&trace),
        vec![AnomalyKind::UnknownOpcode, AnomalyKind::Resynchronised]
    );
    assert_eq!(trace.anomalies[0].offset, 3);
    assert!(has_global(&trace, "os", "system"));
    assert!(calls_global(&trace, "os", "system"));
    // Garbage between pickles: skipped, then the next PROTO pickle is read.
    let mut bytes = tp::two_plain_pickles();
    bytes.extend_from_slice(b"\xff\xfe garbage ");
    bytes.extend_from_slice(&tp::os_system(COMMAND));
    let trace = run(&bytes);
    assert_eq!(kinds(&trace), vec![AnomalyKind::Resynchronised]);
    assert!(calls_global(&trace, "os", "system"));
    // An underflow ends the pickle the same way.
    let mut bytes = b"\x80\x02R".to_vec();
    bytes.extend_from_slice(&tp::os_system(COMMAND));
    let trace = run(&bytes);
    assert_eq!(
        kinds(&trace),
        vec![AnomalyKind::StackUnderflow, AnomalyKind::Resynchronised]
    );
    assert!(has_global(&trace, "os", "system"));
}

#[test]
fn truncation_is_an_anomaly() {
    let full = tp::os_system(COMMAND);
    for cut in [1, 5, 20, full.len() - 1] {
        let trace = run(full.get(..cut).unwrap());
        assert_eq!(kinds(&trace), vec![AnomalyKind::Truncated], "cut at {cut}");
    }
    assert!(run(b"").anomalies.is_empty());
}

#[test]
fn torch_state_dict_is_clean() {
    let trace = run(&tp::torch_state_dict(&tp::small_model()));
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert!(!trace.torch_legacy);
    assert_eq!(trace.persistent_ids, 4);
    let mut names: Vec<String> = globals(&trace)
        .into_iter()
        .map(|(m, n)| format!("{m}.{n}"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "collections.OrderedDict",
            "torch.FloatStorage",
            "torch._utils._rebuild_tensor_v2"
        ]
    );
    let rebuild = trace
        .calls
        .iter()
        .find(|c| c.callee.as_global() == Some(("torch._utils", "_rebuild_tensor_v2")))
        .unwrap();
    assert!(rebuild
        .args
        .render(300)
        .starts_with("(persistent_load((\"storage\", torch.FloatStorage, \"0\", \"cpu\", 216))"));
    let build = trace
        .calls
        .iter()
        .find(|c| c.kind == CallKind::Build)
        .unwrap();
    assert!(build.args.render(200).starts_with("{\"_metadata\""));
}

#[test]
fn torch_legacy_stream_skips_raw_storage() {
    let bytes = tp::torch_legacy(&tp::small_model());
    let trace = run(&bytes);
    assert!(trace.torch_legacy);
    assert_eq!(trace.pickles, 5);
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert!(
        !has_global(&trace, "os", "system"),
        "raw storage bytes are not opcodes"
    );
    assert!(trace.bytes < bytes.len() as u64);
    let poisoned = tp::torch_legacy_stream(&tp::small_model(), Some(tp::os_system(COMMAND)));
    let trace = run(&poisoned);
    assert!(trace.torch_legacy);
    assert!(calls_global(&trace, "os", "system"));
    // Without the magic number the same raw bytes are read (and reported).
    let mut not_legacy = tp::os_system("x");
    not_legacy.extend_from_slice(&bytes[bytes.len() - 40..]);
    assert!(!run(&not_legacy).anomalies.is_empty());
}

#[test]
fn joblib_inline_arrays_are_skipped_exactly() {
    for aligned in [false, true] {
        let trace = run(&tp::joblib_arrays(aligned));
        assert!(
            trace.anomalies.is_empty(),
            "aligned={aligned}: {:?}",
            trace.anomalies
        );
        assert_eq!(trace.joblib_arrays, 2);
        assert_eq!(trace.pickles, 1);
        assert!(!has_global(&trace, "os", "system"));
    }
    let trace = run(&tp::joblib_payload_after_array());
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(trace.joblib_arrays, 1);
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn joblib_object_arrays_run_a_nested_pickle() {
    let trace = run(&tp::joblib_object_array(false));
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(trace.pickles, 2);
    let trace = run(&tp::joblib_object_array(true));
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn joblib_array_of_unknown_size_resynchronises() {
    let mut b = PickleBuilder::new();
    b.proto(4)
        .stack_global_of("joblib.numpy_pickle", "NumpyArrayWrapper")
        .empty_tuple()
        .newobj();
    b.empty_dict()
        .text("shape")
        .text("not a tuple")
        .setitem()
        .build()
        .raw(b"\x01\x02\x03");
    b.raw(&tp::os_system(COMMAND));
    let trace = run(&b.into_bytes());
    assert_eq!(
        kinds(&trace),
        vec![AnomalyKind::JoblibArray, AnomalyKind::Resynchronised]
    );
    assert!(calls_global(&trace, "os", "system"));
}

#[test]
fn benign_samples_have_no_anomalies() {
    for (name, bytes) in [
        ("sklearn", tp::sklearn_logistic_regression()),
        ("sklearn0", tp::sklearn_protocol0()),
        ("argparse", tp::argparse_checkpoint()),
        ("builtins", tp::builtin_types()),
        ("collections", tp::collections_types()),
    ] {
        let trace = run(&bytes);
        assert!(trace.anomalies.is_empty(), "{name}: {:?}", trace.anomalies);
        assert!(trace.pickles >= 1, "{name}");
    }
    let trace = run(&tp::sklearn_logistic_regression());
    // numpy raw data at protocol 2 is `_codecs.encode(text, 'latin1')`: evaluated to bytes.
    let build = trace
        .calls
        .iter()
        .filter(|c| c.kind == CallKind::Build)
        .nth(1)
        .unwrap();
    let state = build.args.items().unwrap();
    assert_eq!(state[4].as_bytes().map(<[u8]>::len), Some(16));
}

#[test]
fn malicious_samples_expose_their_payload() {
    for (name, bytes, module, callee) in [
        ("inst", tp::inst_os_system(), "os", "system"),
        ("obj", tp::obj_os_system(), "os", "system"),
        ("newobj_ex", tp::newobj_ex_popen(), "subprocess", "Popen"),
        ("eval", tp::builtin_eval_proto0(), "__builtin__", "eval"),
        ("exec", tp::builtin_exec(), "builtins", "exec"),
        ("marshal", tp::marshal_function(), "marshal", "loads"),
        (
            "unknown",
            tp::unknown_module_call(),
            "evil_pkg.payload",
            "run",
        ),
    ] {
        let trace = run(&bytes);
        assert!(trace.anomalies.is_empty(), "{name}: {:?}", trace.anomalies);
        assert!(
            calls_global(&trace, module, callee),
            "{name}: {:?}",
            trace.calls
        );
    }
    let trace = run(&tp::build_slot_state_on_class());
    let build = trace
        .calls
        .iter()
        .find(|c| c.kind == CallKind::Build)
        .unwrap();
    assert!(build.slot_state);
    assert_eq!(
        build.callee.as_global(),
        Some(("collections", "OrderedDict"))
    );
    let trace = run(&tp::build_dict_on_module());
    let build = trace
        .calls
        .iter()
        .find(|c| c.kind == CallKind::Build)
        .unwrap();
    assert_eq!(build.callee.as_global(), Some(("collections", "abc")));
}

#[test]
fn every_corpus_case_emulates_without_error() {
    for case in tp::corpus() {
        let trace = run(&case.bytes);
        assert!(trace.pickles >= 1, "{}", case.name);
    }
}

// ----- limits -----

#[test]
fn huge_declared_lengths_do_not_allocate() {
    // BINBYTES of 4 GiB in a 10-byte stream: read incrementally, then truncated.
    let trace = run(b"\x80\x03B\xff\xff\xff\xffabc");
    assert_eq!(kinds(&trace), vec![AnomalyKind::Truncated]);
    // BINBYTES8 beyond isize::MAX is rejected as CPython does.
    let trace = run(b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff.");
    assert_eq!(kinds(&trace), vec![AnomalyKind::TypeConfusion]);
    // Negative BINSTRING / LONG4 lengths.
    assert_eq!(
        kinds(&run(b"T\xff\xff\xff\xff.")),
        vec![AnomalyKind::TypeConfusion]
    );
    assert_eq!(
        kinds(&run(b"\x80\x02\x8b\xff\xff\xff\xff.")),
        vec![AnomalyKind::TypeConfusion]
    );
}

#[test]
fn long_constants_keep_a_prefix() {
    let limits = Limits {
        max_kept_constant: 16,
        ..Limits::default()
    };
    let data = vec![7u8; 10_000];
    let mut b = PickleBuilder::new();
    b.proto(3)
        .global("t", "probe")
        .binbytes(&data)
        .tuple1()
        .reduce()
        .stop();
    let trace = run_with(&b.into_bytes(), &limits);
    assert!(trace.anomalies.is_empty());
    let arg = &trace.calls[0].args.items().unwrap()[0];
    assert!(matches!(arg, Value::Bytes { data, len: 10_000 } if data.len() == 16));
}

#[test]
fn deep_marks_are_bounded_and_the_payload_still_found() {
    let limits = Limits {
        max_stack: 1000,
        ..Limits::default()
    };
    let mut bytes = b"\x80\x02".to_vec();
    bytes.extend(std::iter::repeat_n(b'(', 200_000));
    bytes.extend_from_slice(b"cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
    let trace = run_with(&bytes, &limits);
    assert_eq!(kinds(&trace), vec![AnomalyKind::LimitHit]);
    assert!(calls_global(&trace, "os", "system"));
    // Deep values: TUPLE1 a million times nests a million levels; nothing recurses.
    let mut bytes = b"\x80\x02)".to_vec();
    bytes.extend(std::iter::repeat_n(0x85, 1_000_000));
    bytes.push(b'.');
    let trace = run(&bytes);
    assert!(trace.anomalies.is_empty());
    // Same nesting, then abandoned mid-pickle (resynchronisation drops it).
    bytes.pop();
    bytes.push(0xff);
    assert_eq!(kinds(&run(&bytes)), vec![AnomalyKind::UnknownOpcode]);
}

#[test]
fn memo_and_container_bounds() {
    let limits = Limits {
        max_memo: 10,
        max_container_items: 5,
        ..Limits::default()
    };
    let mut b = PickleBuilder::new();
    b.proto(4).empty_list();
    for i in 0..100u32 {
        b.long_binput(i);
    }
    b.mark();
    for i in 0..20 {
        b.int(i);
    }
    b.appends().long_binget(50).stop();
    let trace = run_with(&b.into_bytes(), &limits);
    let limit_hits = trace
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::LimitHit)
        .count();
    assert_eq!(limit_hits, 2, "{:?}", trace.anomalies);
    assert!(kinds(&trace).contains(&AnomalyKind::MemoMiss));
}

#[test]
fn calls_are_bounded_per_callable_and_globals_deduplicated() {
    let mut b = PickleBuilder::new();
    b.proto(2).mark();
    for _ in 0..20 {
        b.global("m", "f").empty_tuple().reduce();
    }
    b.tuple().stop();
    let trace = run(&b.into_bytes());
    assert_eq!(trace.globals.len(), 1);
    assert_eq!(trace.globals[0].count, 20);
    assert_eq!(trace.calls.len(), 8);
    assert_eq!(trace.calls.iter().map(|c| c.count).sum::<u64>(), 20);
    assert_eq!(trace.calls[7].count, 13);
}

#[test]
fn anomalies_are_bounded_per_kind() {
    // `m.f(None)`, 10,000 times: REDUCE with arguments that are not a tuple, one type confusion each.
    let mut bytes = b"\x80\x02".to_vec();
    for _ in 0..10_000 {
        bytes.extend_from_slice(b"cm\nf\nNR0");
    }
    bytes.extend_from_slice(b"N.");
    let trace = run(&bytes);
    assert!(trace.anomalies.len() < 300);
    assert_eq!(
        trace.anomalies.last().map(|a| a.kind),
        Some(AnomalyKind::LimitHit)
    );
}

#[test]
fn protocol_mismatch_and_unsupported_protocol() {
    let trace = run(b"\x80\x02\x8c\x01a\x8c\x01b\x93.");
    assert_eq!(kinds(&trace), vec![AnomalyKind::ProtocolMismatch]);
    let trace = run(b"\x80\x07N.");
    assert_eq!(kinds(&trace), vec![AnomalyKind::ProtocolMismatch]);
    assert_eq!(trace.protocol, Some(7));
}

#[test]
fn offsets_are_relative_to_the_base() {
    let bytes = tp::os_system(COMMAND);
    let trace = Emulator::new(&Limits::default())
        .base_offset(1000)
        .run(bytes.as_slice())
        .unwrap();
    assert_eq!(trace.globals[0].offset, 1002);
    assert!(trace.calls[0].offset > 1002);
}

#[test]
fn max_pickles_bounds_the_stream() {
    let limits = Limits {
        max_pickles: 3,
        ..Limits::default()
    };
    let bytes: Vec<u8> = std::iter::repeat_n(b"N.".as_slice(), 100)
        .flatten()
        .copied()
        .collect();
    let trace = run_with(&bytes, &limits);
    assert_eq!(trace.pickles, 3);
    assert_eq!(kinds(&trace), vec![AnomalyKind::LimitHit]);
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn io_errors_are_errors() {
    let err = emulate(Failing, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("disk on fire"));
}

/// A lazily generated stream: `PROTO 4`, a list, then `count` BINBYTES of `chunk` bytes appended one by one.
struct BigPickle {
    head: Vec<u8>,
    chunk: usize,
    left: usize,
    pos: usize,
    phase: u8,
}

impl BigPickle {
    fn new(chunk: usize, count: usize) -> Self {
        BigPickle {
            head: b"\x80\x04]".to_vec(),
            chunk,
            left: count,
            pos: 0,
            phase: 0,
        }
    }

    fn current(&self) -> Vec<u8> {
        match self.phase {
            0 => self.head.clone(),
            1 => {
                let mut h = vec![b'B'];
                h.extend_from_slice(&(self.chunk as u32).to_le_bytes());
                h
            }
            2 => vec![0x5a; self.chunk.min(1 << 16)],
            3 => b"a".to_vec(),
            _ => b".".to_vec(),
        }
    }
}

impl Read for BigPickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.phase == 5 {
                return Ok(0);
            }
            let part = self.current();
            let part_len = if self.phase == 2 {
                self.chunk
            } else {
                part.len()
            };
            if self.pos < part_len {
                let in_part = self.pos % part.len();
                let n = (part.len() - in_part)
                    .min(part_len - self.pos)
                    .min(buf.len());
                buf[..n].copy_from_slice(&part[in_part..in_part + n]);
                self.pos += n;
                return Ok(n);
            }
            self.pos = 0;
            self.phase = match self.phase {
                0 => 1,
                1 => 2,
                2 => 3,
                3 if self.left > 1 => {
                    self.left -= 1;
                    1
                }
                3 => 4,
                _ => 5,
            };
        }
    }
}

#[test]
fn large_streams_are_read_in_flat_memory() {
    // 64 MiB of 1 MiB constants appended to one list: kept bytes are bounded by the per-pickle budget.
    let limits = Limits::default();
    let trace = emulate(BigPickle::new(1 << 20, 64), &limits).unwrap();
    assert!(trace.anomalies.is_empty(), "{:?}", trace.anomalies);
    assert_eq!(trace.pickles, 1);
    assert_eq!(trace.bytes, 3 + 64 * (5 + (1 << 20) + 1) + 1);
}

/// Throughput check (run with `--release -- --ignored`): 1 GiB of 4 MiB BINBYTES and 4 million small opcodes.
#[test]
#[ignore = "timing; run in release"]
fn throughput() {
    let start = std::time::Instant::now();
    let trace = emulate(BigPickle::new(4 << 20, 256), &Limits::default()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!("BINBYTES: {:.0} MB/s", trace.bytes as f64 / secs / 1e6);
    let mut bytes = b"\x80\x04]\x94(".to_vec();
    for i in 0..1_000_000u32 {
        bytes.extend_from_slice(b"\x8c\x03key");
        bytes.push(0x94);
        bytes.extend_from_slice(b"K\x01");
        bytes.extend_from_slice(&[b'h', (i % 200) as u8]);
    }
    bytes.extend_from_slice(b"e.");
    let start = std::time::Instant::now();
    let trace = run(&bytes);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "small opcodes: {:.1} M opcodes/s",
        trace.opcodes as f64 / secs / 1e6
    );
    let specs: Vec<tp::TensorSpec> = (0..200_000)
        .map(|i| tp::TensorSpec::new(&format!("layer.{i}.weight"), &[16, 4]))
        .collect();
    let bytes = tp::torch_state_dict(&specs);
    let start = std::time::Instant::now();
    let trace = run(&bytes);
    let secs = start.elapsed().as_secs_f64();
    // 200 000 entries exceed max_container_items: only that bound is reported.
    assert_eq!(kinds(&trace), vec![AnomalyKind::LimitHit]);
    eprintln!(
        "state dict: {:.1} M opcodes/s, {:.0} MB/s",
        trace.opcodes as f64 / secs / 1e6,
        trace.bytes as f64 / secs / 1e6
    );
}

/// Emulate the file named by `AEGIS_PICKLE_FILE` and print a summary (run with `--release -- --ignored`
/// under `/usr/bin/time -v` to check throughput and peak memory on large real files).
#[test]
#[ignore = "needs AEGIS_PICKLE_FILE"]
fn emulate_file_from_env() {
    let Ok(path) = std::env::var("AEGIS_PICKLE_FILE") else {
        return;
    };
    let file = std::fs::File::open(&path).unwrap();
    let start = std::time::Instant::now();
    let trace = emulate(file, &Limits::default()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{path}: {} bytes, {} opcodes, {} pickles, {} globals, {} calls, {} anomalies in {secs:.2}s ({:.0} MB/s)",
        trace.bytes,
        trace.opcodes,
        trace.pickles,
        trace.globals.len(),
        trace.calls.len(),
        trace.anomalies.len(),
        trace.bytes as f64 / secs / 1e6
    );
}

/// Storages, views and item writes into tensors are extracted from a PyTorch `data.pkl`; an honest one has
/// no write and a view inside its storage.
#[test]
fn tensor_declarations_views_and_writes_are_extracted() {
    use aegis_test_support::loaders::tensor_pickle;
    let limits = Limits::default();
    let honest = emulate(&tensor_pickle(4, 2, 2, false)[..], &limits).unwrap();
    assert_eq!(honest.storages.len(), 1);
    assert_eq!(
        (honest.storages[0].key.as_str(), honest.storages[0].numel),
        ("0", 4)
    );
    assert_eq!(honest.storages[0].storage_type, "FloatStorage");
    assert_eq!(honest.tensor_views.len(), 1);
    assert_eq!(honest.tensor_views[0].extent(), Some(4));
    assert!(honest.tensor_writes.is_empty());
    let written = emulate(&tensor_pickle(4, 4, 0, true)[..], &limits).unwrap();
    assert_eq!(written.tensor_writes.len(), 1);
    assert_eq!(written.tensor_writes[0].opcode, "SETITEMS");
    assert_eq!(
        written.tensor_writes[0].target,
        "torch._utils._rebuild_tensor_v2"
    );
    let past = emulate(&tensor_pickle(4, 64, 0, false)[..], &limits).unwrap();
    assert_eq!(past.tensor_views[0].extent(), Some(64));
}

//! Allow-list policy for pickle globals.
//!
//! Deny-lists fail open: every standard-library function nobody thought of is a new bypass. Aegis decides
//! with an **allow-list** per ecosystem (what PyTorch's `weights_only` loader accepts, numpy, scikit-learn
//! estimators, `collections`, harmless builtins, `argparse.Namespace`): any global outside it fails the scan.
//! The list of known gadgets below is used only to raise a finding to critical and explain what the gadget
//! does; a global missing from it is still caught by the allow-list.
//!
//! Users extend the allow-list with `--allow module.qualname` or a policy file (`aegis.toml`):
//!
//! ```toml
//! [scan]
//! allow = ["mylab.models.FraudNet", "lightning.fabric.*"]
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

/// What the policy says about one global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// On the allow-list of the named ecosystem (or the user's list: `"policy"`).
    Allowed(&'static str),
    /// A known gadget: `why` explains what it gives an attacker.
    Gadget {
        /// The gadget family as matched, e.g. `os`.
        matched: &'static str,
        /// What it does.
        why: &'static str,
    },
    /// Outside every allow-list, not a known gadget.
    NotAllowed,
}

/// Allow-list policy: built-in ecosystems plus the user's additions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Exact `module.qualname` entries and `prefix.*` patterns added by the user.
    extra: BTreeSet<String>,
    /// Paths left out of directory walks (gitignore syntax, relative to each directory scanned).
    exclude: Vec<String>,
    /// The user's own ignore file (`./.aegisignore`), whose patterns apply relative to its directory.
    ignore_file: Option<std::path::PathBuf>,
}

/// A policy file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid policy file {path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// An allow entry is not a dotted Python name (optionally ending in `.*`).
    #[error("invalid allow entry `{entry}`: expected `module.qualname` or `module.prefix.*`")]
    BadEntry {
        /// The entry.
        entry: String,
    },
    /// An exclude pattern is not a valid glob.
    #[error("invalid exclude pattern `{pattern}`: {detail} (gitignore syntax, e.g. `*.csv`, `tests/`, `data/**/*.json`)")]
    BadExclude {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    scan: ScanSection,
    #[serde(default)]
    limits: LimitsSection,
    // One `aegis.toml` serves `aegis scan` and `aegis serve`: the gateway's sections are its own business.
    #[serde(default, rename = "server")]
    _server: Option<toml::Value>,
    #[serde(default, rename = "defaults")]
    _defaults: Option<toml::Value>,
    #[serde(default, rename = "key_ceilings")]
    _key_ceilings: Option<toml::Value>,
    #[serde(default, rename = "checks")]
    _checks: Option<toml::Value>,
    #[serde(default, rename = "model")]
    _model: Option<toml::Value>,
    #[serde(default, rename = "upstream")]
    _upstream: Option<toml::Value>,
}

/// `[limits]` of a policy file: overrides of [`aegis_formats::Limits`].
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_depth: Option<usize>,
    max_members: Option<u64>,
    max_expanded_bytes: Option<u64>,
    max_in_memory: Option<u64>,
    max_header: Option<u64>,
    max_entries: Option<u64>,
    max_protobuf: Option<u64>,
}

impl LimitsSection {
    fn apply(&self, limits: &mut aegis_formats::Limits) {
        let set = |target: &mut u64, value: Option<u64>| {
            if let Some(v) = value {
                *target = v;
            }
        };
        if let Some(depth) = self.max_depth {
            limits.max_depth = depth;
        }
        set(&mut limits.max_members, self.max_members);
        set(&mut limits.max_expanded_bytes, self.max_expanded_bytes);
        set(&mut limits.max_in_memory, self.max_in_memory);
        set(&mut limits.max_header, self.max_header);
        set(&mut limits.max_entries, self.max_entries);
        set(&mut limits.max_protobuf, self.max_protobuf);
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScanSection {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

impl Policy {
    /// Parse a policy file's text; `path` is used in error messages.
    pub fn from_toml(text: &str, path: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::config_from_toml(text, path)?.0)
    }

    /// Parse a policy file's text into the policy and the limits it sets (defaults elsewhere).
    pub fn config_from_toml(
        text: &str,
        path: &str,
    ) -> Result<(Policy, aegis_formats::Limits), PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Invalid {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let mut policy = Policy::default();
        for entry in file.scan.allow {
            policy.allow(&entry)?;
        }
        for pattern in file.scan.exclude {
            policy.exclude(&pattern)?;
        }
        let mut limits = aegis_formats::Limits::default();
        file.limits.apply(&mut limits);
        Ok((policy, limits))
    }

    /// Read a policy file (`aegis.toml`): the policy and the limits it sets.
    pub fn load(path: &Path) -> Result<(Policy, aegis_formats::Limits), PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::config_from_toml(&text, &path.display().to_string())
    }

    /// Allow one more global: `module.qualname`, or `prefix.*` for everything below a prefix.
    pub fn allow(&mut self, entry: &str) -> Result<(), PolicyError> {
        let body = entry.strip_suffix(".*").unwrap_or(entry);
        let valid = !body.is_empty()
            && body.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
        if !valid {
            return Err(PolicyError::BadEntry {
                entry: entry.to_owned(),
            });
        }
        self.extra.insert(entry.to_owned());
        Ok(())
    }

    /// Leave paths matching `pattern` (gitignore syntax: `*.csv`, `tests/`, `/data/raw`, `**/fixtures`) out of
    /// directory walks. Files named on the command line are always scanned.
    pub fn exclude(&mut self, pattern: &str) -> Result<(), PolicyError> {
        let mut check = ignore::gitignore::GitignoreBuilder::new("/");
        let bad = |detail: String| PolicyError::BadExclude {
            pattern: pattern.to_owned(),
            detail,
        };
        if pattern.trim().is_empty() {
            return Err(bad("the pattern is empty".into()));
        }
        check
            .add_line(None, pattern)
            .map_err(|e| bad(e.to_string()))?;
        self.exclude.push(pattern.to_owned());
        Ok(())
    }

    /// The exclude patterns.
    pub fn excludes(&self) -> &[String] {
        &self.exclude
    }

    /// Obey the gitignore-syntax file at `path` (the working directory's `.aegisignore`), relative to its
    /// directory. Ignore files met inside a scanned tree are never obeyed (a scanned repository must not hide
    /// its own files); they are reported.
    pub fn ignore_file(&mut self, path: std::path::PathBuf) {
        self.ignore_file = Some(path);
    }

    /// The ignore file obeyed, if any.
    pub fn ignore_file_path(&self) -> Option<&std::path::Path> {
        self.ignore_file.as_deref()
    }

    /// The user's additions.
    pub fn extra(&self) -> impl Iterator<Item = &str> {
        self.extra.iter().map(String::as_str)
    }

    /// Judge the global `module` + `name` (name may be dotted: an attribute walk).
    ///
    /// A known gadget is never allowed, whatever the user's list says: `lightning.*` must not admit
    /// `lightning.fabric.utilities.cloud_io` + `os.system`.
    pub fn verdict(&self, module: &str, name: &str) -> Verdict {
        if torchscript_helper(module, name) {
            return Verdict::Allowed("torchscript");
        }
        if let Some((matched, why)) = gadget(module, name) {
            return Verdict::Gadget { matched, why };
        }
        if let Some((home, target)) = resolve_reexport(module, name) {
            return self.verdict(home, &target);
        }
        match self.allowed(module, name) {
            Some(ecosystem) => Verdict::Allowed(ecosystem),
            None => Verdict::NotAllowed,
        }
    }

    fn allowed(&self, module: &str, name: &str) -> Option<&'static str> {
        let full = format!("{module}.{name}");
        if self.extra.contains(&full)
            || (!name.contains('.')
                && self.extra.iter().any(|p| {
                    p.strip_suffix(".*").is_some_and(|prefix| {
                        full.starts_with(prefix) && full[prefix.len()..].starts_with('.')
                    })
                }))
        {
            return Some("policy");
        }
        builtin_allowed(module, name)
    }
}

/// Python 2 module names that `pickle`'s `fix_imports` maps to their Python 3 names.
fn py3_module(module: &str) -> &str {
    // A subset of CPython's `_compat_pickle.IMPORT_MAPPING`, applied by `find_class` below protocol 3.
    match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        "cPickle" => "pickle",
        "thread" => "_thread",
        "Queue" => "queue",
        "SocketServer" => "socketserver",
        "Tkinter" => "tkinter",
        "httplib" => "http.client",
        "urllib2" => "urllib.request",
        "urlparse" => "urllib.parse",
        "cStringIO" | "StringIO" => "io",
        other => other,
    }
}

/// Python 2 builtins that `_compat_pickle.NAME_MAPPING` renames (the harmless subset; `reduce` and `intern`
/// are judged as gadgets above).
fn py3_name<'a>(module: &'a str, name: &'a str) -> (&'a str, &'a str) {
    let module = py3_module(module);
    if module != "builtins" {
        return (module, name);
    }
    let name = match name {
        "xrange" => "range",
        "unicode" | "basestring" => "str",
        "long" => "int",
        "unichr" => "chr",
        other => other,
    };
    (module, name)
}

const TORCH_ALLOWED: &[&str] = &[
    "_utils._rebuild_tensor",
    "_utils._rebuild_tensor_v2",
    "_utils._rebuild_tensor_v3",
    "_utils._rebuild_parameter",
    "_utils._rebuild_parameter_with_state",
    "_utils._rebuild_sparse_tensor",
    "_utils._rebuild_meta_tensor_no_storage",
    "_utils._rebuild_nested_tensor",
    "_utils._rebuild_wrapper_subclass",
    "_utils._rebuild_qtensor",
    "_utils._rebuild_device_tensor_from_cpu_tensor",
    "_utils._rebuild_device_tensor_from_numpy",
    "_tensor._rebuild_from_type_v2",
    "nn.parameter.Parameter",
    "nn.parameter.Buffer",
    "serialization._get_layout",
    "storage.UntypedStorage",
    "storage.TypedStorage",
    "storage._TypedStorage",
];

const TORCH_TOP_LEVEL: &[&str] = &[
    "Size",
    "Tensor",
    "device",
    "dtype",
    "layout",
    "memory_format",
    "UntypedStorage",
    "TypedStorage",
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QUInt8Storage",
    "QInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "short",
    "int32",
    "int",
    "int64",
    "long",
    "bool",
    "quint8",
    "qint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "strided",
    "sparse_coo",
    "sparse_csr",
    "sparse_csc",
    "sparse_bsr",
    "sparse_bsc",
    "_mkldnn",
    "contiguous_format",
    "channels_last",
    "channels_last_3d",
    "preserve_format",
    "per_tensor_affine",
    "per_channel_affine",
    "per_tensor_symmetric",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
];

const NUMPY_ALLOWED: &[&str] = &[
    "core.multiarray._reconstruct",
    // Pickles of arrays from NumPy before 1.0: `ndarray.__new__(subtype, shape, dtype)`.
    "core._internal._reconstruct",
    // `numpy.matrix`, an ndarray subclass with no state of its own.
    "matrixlib.defmatrix.matrix",
    "_core.multiarray._reconstruct",
    "core.multiarray.scalar",
    "_core.multiarray.scalar",
    "ndarray",
    "dtype",
    "ma.core._mareconstruct",
    "ma.core.MaskedArray",
    // The public path of the same class (every `GridSearchCV` pickles its `cv_results_` with it).
    "ma.MaskedArray",
    // Protocol 5 pickles of arrays (NumPy 2 with `pickle.HIGHEST_PROTOCOL`): `frombuffer(buf, dtype)
    // .reshape(shape, order)`; NumPy refuses object dtypes there, so no pickle runs inside.
    "_core.numeric._frombuffer",
    "core.numeric._frombuffer",
    "random._pickle.__randomstate_ctor",
    "random._pickle.__bit_generator_ctor",
    "random._pickle.__generator_ctor",
    "random.mtrand.RandomState",
    "random._mt19937.MT19937",
    "random._pcg64.PCG64",
    "random.bit_generator.SeedSequence",
    // Cython's reconstructor of a `SeedSequence` (any pickled generator, `HistGradientBoosting`, `MLP`):
    // `SeedSequence.__new__(cls)` then its own state; a `cls` that is not a SeedSequence raises.
    "random.bit_generator.__pyx_unpickle_SeedSequence",
    "random._generator.Generator",
];

/// pandas objects `DataFrame.to_pickle` writes: the containers, indexes, block managers, extension arrays and
/// dtypes, and the Cython/module-level reconstructors pandas registers for them. Each builds a pandas object
/// from the state that follows; none reads files or runs code it is given. pandas 3 pickles the public
/// paths (`pandas.DataFrame`), earlier versions the defining modules. I/O functions (`read_pickle`,
/// `read_csv`, …) are deliberately absent.
const PANDAS_ALLOWED: &[&str] = &[
    "pandas.DataFrame",
    "pandas.Series",
    "pandas.Index",
    "pandas.RangeIndex",
    "pandas.MultiIndex",
    "pandas.CategoricalIndex",
    "pandas.DatetimeIndex",
    "pandas.TimedeltaIndex",
    "pandas.PeriodIndex",
    "pandas.IntervalIndex",
    "pandas.Categorical",
    "pandas.CategoricalDtype",
    "pandas.DatetimeTZDtype",
    "pandas.PeriodDtype",
    "pandas.IntervalDtype",
    "pandas.SparseDtype",
    "pandas.StringDtype",
    "pandas.BooleanDtype",
    "pandas.Int8Dtype",
    "pandas.Int16Dtype",
    "pandas.Int32Dtype",
    "pandas.Int64Dtype",
    "pandas.UInt8Dtype",
    "pandas.UInt16Dtype",
    "pandas.UInt32Dtype",
    "pandas.UInt64Dtype",
    "pandas.Float32Dtype",
    "pandas.Float64Dtype",
    "pandas.Timestamp",
    "pandas.Timedelta",
    "pandas.Period",
    "pandas.Interval",
    "pandas.arrays.StringArray",
    "pandas.arrays.DatetimeArray",
    "pandas.arrays.TimedeltaArray",
    "pandas.arrays.PeriodArray",
    "pandas.arrays.IntegerArray",
    "pandas.arrays.FloatingArray",
    "pandas.arrays.BooleanArray",
    "pandas.arrays.IntervalArray",
    "pandas.arrays.SparseArray",
    "pandas.arrays.NumpyExtensionArray",
    "pandas.core.frame.DataFrame",
    "pandas.core.series.Series",
    "pandas.core.indexes.base.Index",
    "pandas.core.indexes.base._new_Index",
    "pandas.core.indexes.range.RangeIndex",
    "pandas.core.indexes.multi.MultiIndex",
    "pandas.core.indexes.category.CategoricalIndex",
    "pandas.core.indexes.datetimes.DatetimeIndex",
    "pandas.core.indexes.datetimes._new_DatetimeIndex",
    "pandas.core.indexes.timedeltas.TimedeltaIndex",
    "pandas.core.indexes.period.PeriodIndex",
    "pandas.core.indexes.period._new_PeriodIndex",
    "pandas.core.indexes.interval.IntervalIndex",
    "pandas.core.indexes.interval._new_IntervalIndex",
    "pandas.core.internals.managers.BlockManager",
    "pandas.core.internals.managers.SingleBlockManager",
    "pandas.core.internals.blocks.new_block",
    "pandas._libs.internals._unpickle_block",
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked",
    "pandas._libs.sparse.IntIndex",
    "pandas._libs.sparse.BlockIndex",
    "pandas._libs.interval.Interval",
    "pandas._libs.interval.__pyx_unpickle_IntervalMixin",
    "pandas.NA",
    "pandas.ArrowDtype",
    "pandas.arrays.ArrowStringArray",
    "pandas.arrays.ArrowExtensionArray",
    "pandas.core.arrays.string_arrow.ArrowStringArray",
    "pandas.core.arrays.arrow.array.ArrowExtensionArray",
    "pandas.core.dtypes.dtypes.ArrowDtype",
    "pandas._libs.missing.NA",
    "pandas._libs.tslibs.nattype.__nat_unpickle",
    "pandas._libs.tslibs.timestamps._unpickle_timestamp",
    "pandas._libs.tslibs.timestamps.Timestamp",
    "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
    "pandas._libs.tslibs.timedeltas.Timedelta",
    "pandas._libs.tslibs.period.Period",
    "pandas.core.arrays.categorical.Categorical",
    "pandas.core.arrays.datetimes.DatetimeArray",
    "pandas.core.arrays.timedeltas.TimedeltaArray",
    "pandas.core.arrays.period.PeriodArray",
    "pandas.core.arrays.string_.StringArray",
    "pandas.core.arrays.string_.StringDtype",
    "pandas.core.arrays.integer.IntegerArray",
    "pandas.core.arrays.floating.FloatingArray",
    "pandas.core.arrays.boolean.BooleanArray",
    "pandas.core.arrays.boolean.BooleanDtype",
    "pandas.core.arrays.interval.IntervalArray",
    "pandas.core.arrays.numpy_.NumpyExtensionArray",
    "pandas.core.arrays.numpy_.PandasArray",
    "pandas.core.arrays.sparse.array.SparseArray",
    "pandas.core.dtypes.dtypes.CategoricalDtype",
    "pandas.core.dtypes.dtypes.DatetimeTZDtype",
    "pandas.core.dtypes.dtypes.PeriodDtype",
    "pandas.core.dtypes.dtypes.IntervalDtype",
    "pandas.core.dtypes.dtypes.SparseDtype",
];

/// Exact names of other libraries' own model and data classes, as their real files pickle them: gradient
/// boosting estimators (their `__setstate__` parses the library's own model buffer), the pyarrow pieces pandas
/// 3 uses for its default string arrays, transformers' `TrainingArguments` (a dataclass and the enums it
/// holds), and time zones (`ZoneInfo._unpickle` looks a key up in the time-zone database, which refuses
/// paths). Each is reached by its defining module, the path pickle writes.
const OTHER_ALLOWED: &[(&str, &str)] = &[
    ("xgboost", "xgboost.core.Booster"),
    ("xgboost", "xgboost.sklearn.XGBModel"),
    ("xgboost", "xgboost.sklearn.XGBClassifier"),
    ("xgboost", "xgboost.sklearn.XGBRegressor"),
    ("xgboost", "xgboost.sklearn.XGBRanker"),
    ("xgboost", "xgboost.sklearn.XGBRFClassifier"),
    ("xgboost", "xgboost.sklearn.XGBRFRegressor"),
    ("lightgbm", "lightgbm.basic.Booster"),
    ("lightgbm", "lightgbm.sklearn.LGBMModel"),
    ("lightgbm", "lightgbm.sklearn.LGBMClassifier"),
    ("lightgbm", "lightgbm.sklearn.LGBMRegressor"),
    ("lightgbm", "lightgbm.sklearn.LGBMRanker"),
    ("pyarrow", "pyarrow.lib._restore_array"),
    ("pyarrow", "pyarrow.lib.type_for_alias"),
    ("pyarrow", "pyarrow.lib.py_buffer"),
    ("pyarrow", "pyarrow.lib.chunked_array"),
    (
        "transformers",
        "transformers.training_args.TrainingArguments",
    ),
    ("transformers", "transformers.training_args.OptimizerNames"),
    (
        "transformers",
        "transformers.training_args_seq2seq.Seq2SeqTrainingArguments",
    ),
    ("transformers", "transformers.trainer_utils.SchedulerType"),
    (
        "transformers",
        "transformers.trainer_utils.IntervalStrategy",
    ),
    ("transformers", "transformers.trainer_utils.HubStrategy"),
    ("transformers", "transformers.trainer_utils.SaveStrategy"),
    (
        "transformers",
        "transformers.trainer_utils.EvaluationStrategy",
    ),
    ("transformers", "transformers.trainer_utils.FSDPOption"),
    ("transformers", "transformers.debug_utils.DebugOption"),
    (
        "transformers",
        "transformers.trainer_pt_utils.AcceleratorConfig",
    ),
    (
        "transformers",
        "accelerate.utils.dataclasses.DistributedType",
    ),
    ("transformers", "accelerate.state.PartialState"),
    // pytz zones (pandas 2 tz-aware columns): `_p` looks the zone up by name, and pytz refuses names with
    // `..` or a leading `/`.
    ("builtins", "pytz._p"),
    ("builtins", "pytz._UTC"),
    ("builtins", "dateutil.tz.tz.tzutc"),
    ("builtins", "dateutil.tz.tz.tzoffset"),
    ("builtins", "zoneinfo.ZoneInfo"),
    ("builtins", "zoneinfo.ZoneInfo._unpickle"),
];

/// TorchScript's own unpickling helpers (`torch.jit._pickle`): they build lists and restore type tags. The
/// rest of `torch.jit` (loading programs) stays a gadget.
const TORCHSCRIPT_HELPERS: &[&str] = &[
    "build_intlist",
    "build_tensorlist",
    "build_doublelist",
    "build_boollist",
    "build_tensor_from_id",
    "restore_type_tag",
];

/// Whether a global is exactly one of TorchScript's unpickling helpers (checked before the gadget list, which
/// names all of `torch.jit`).
fn torchscript_helper(module: &str, name: &str) -> bool {
    module == "torch.jit._pickle" && TORCHSCRIPT_HELPERS.contains(&name)
}

/// A TorchScript class (`__torch__.*`): a class the archive's own `code/` defines, resolved by
/// `torch.jit.load`; `pickle.load` cannot import it.
fn torchscript_class(module: &str, name: &str) -> bool {
    // `__torch__.torch.classes.ns.Class` is a C++ custom class whose native `__setstate__` reads the
    // pickle's data; only PyTorch's own namespaces pass.
    let custom = module
        .strip_prefix("__torch__.torch.classes.")
        .map(|rest| rest.split('.').next().unwrap_or_default());
    let custom_ok = custom.is_none_or(crate::torchscript::builtin_namespace);
    (module == "__torch__" || module.starts_with("__torch__.")) && !name.contains('.') && custom_ok
}

/// pandas' nullable integer and float dtypes and the frequency offsets periods carry: plain classes whose
/// constructors only store their parameters.
fn pandas_class(module: &str, name: &str) -> bool {
    let dtype_module = matches!(
        module,
        "pandas.core.arrays.integer" | "pandas.core.arrays.floating"
    );
    (dtype_module && name.ends_with("Dtype") && is_class_name(name))
        || (module == "pandas._libs.tslibs.offsets" && is_class_name(name))
}

const NUMPY_SCALARS: &[&str] = &[
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "intc",
    "uintc",
    "intp",
    "uintp",
    "longlong",
    "ulonglong",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
    "object_",
    "half",
    "single",
    "double",
    "short",
    "ushort",
    "byte",
    "ubyte",
    "int_",
    "float_",
    "complex_",
    "bool",
];

const BUILTINS_ALLOWED: &[&str] = &[
    "set",
    "frozenset",
    "complex",
    "slice",
    "bytearray",
    "bytes",
    "object",
    "range",
    "int",
    "float",
    "str",
    "list",
    "tuple",
    "dict",
    "bool",
    "Ellipsis",
    "NotImplemented",
];

const COLLECTIONS_ALLOWED: &[&str] = &["OrderedDict", "defaultdict", "Counter", "deque"];

/// Modules of scikit-learn whose callables are *not* plain estimators: they fetch data, run scripts or
/// vendor other libraries.
const SKLEARN_EXCLUDED: &[&str] = &[
    "sklearn.utils._testing",
    "sklearn.utils._joblib",
    "sklearn.utils.parallel",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._show_versions",
    "sklearn.utils.fixes",
    "sklearn.experimental",
    "sklearn.conftest",
];

fn builtin_allowed(module: &str, name: &str) -> Option<&'static str> {
    let (module, name) = py3_name(module, name);
    match module {
        "builtins" if BUILTINS_ALLOWED.contains(&name) => Some("builtins"),
        "collections" if COLLECTIONS_ALLOWED.contains(&name) => Some("collections"),
        "argparse" if name == "Namespace" => Some("argparse"),
        "_codecs" if name == "encode" => Some("pytorch"),
        "copyreg"
            if name == "_reconstructor" || name == "__newobj__" || name == "__newobj_ex__" =>
        {
            Some("copyreg")
        }
        "datetime"
            if matches!(
                name,
                "datetime" | "date" | "time" | "timedelta" | "timezone"
            ) =>
        {
            Some("builtins")
        }
        "decimal" if name == "Decimal" => Some("builtins"),
        "fractions" if name == "Fraction" => Some("builtins"),
        "uuid" if name == "UUID" => Some("builtins"),
        "pathlib"
            if matches!(
                name,
                "PosixPath" | "WindowsPath" | "PurePosixPath" | "PureWindowsPath" | "Path"
            ) =>
        {
            Some("builtins")
        }
        "torch" if TORCH_TOP_LEVEL.contains(&name) => Some("pytorch"),
        "numpy" if NUMPY_SCALARS.contains(&name) => Some("numpy"),
        // NDArrayWrapper (joblib < 0.10) loads a side file with np.load(allow_pickle=True): not allowed.
        "joblib.numpy_pickle" if name == "NumpyArrayWrapper" => Some("joblib"),
        _ => {
            if let Some(rest) = module.strip_prefix("torch.") {
                let qual = format!("{rest}.{name}");
                if TORCH_ALLOWED.contains(&qual.as_str()) {
                    return Some("pytorch");
                }
            }
            if let Some(rest) = module.strip_prefix("numpy.") {
                let qual = format!("{rest}.{name}");
                if NUMPY_ALLOWED.contains(&qual.as_str()) {
                    return Some("numpy");
                }
                if (rest == "dtypes" || rest == "core.numerictypes" || rest == "_core.numerictypes")
                    && is_class_name(name)
                {
                    return Some("numpy");
                }
            }
            if module == "numpy" && NUMPY_ALLOWED.contains(&name) {
                return Some("numpy");
            }
            if sklearn_estimator(module, name) {
                return Some("scikit-learn");
            }
            let full = format!("{module}.{name}");
            if module.starts_with("pandas")
                && (PANDAS_ALLOWED.contains(&full.as_str()) || pandas_class(module, name))
            {
                return Some("pandas");
            }
            if torchscript_class(module, name) {
                return Some("torchscript");
            }
            if let Some((ecosystem, _)) = OTHER_ALLOWED.iter().find(|(_, n)| *n == full) {
                return Some(ecosystem);
            }
            // Every class-shaped name under `torch.nn.modules` is a torch module class or a re-exported
            // tensor, parameter, hook or PackedSequence (checked on torch 2.15: 168 classes defined there, no
            // other re-exports); a whole pickled `nn.Module` is rebuilt from them.
            if module.starts_with("torch.nn.modules.") && is_class_name(name) {
                return Some("pytorch");
            }
            if scipy_sparse(module, name) {
                return Some("scipy");
            }
            None
        }
    }
}

/// A plain class name (no attribute walk), e.g. `LogisticRegression`.
fn is_class_name(name: &str) -> bool {
    !name.contains('.') && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
}

/// Names scikit-learn modules bind to objects defined elsewhere (generated by
/// `bench/scan/sklearn_reexports.py` from scikit-learn 1.9.1): `(module, name, defining module, name there)`.
/// A pickle may reach `multiprocessing.connection.Client` as `sklearn.callback._transport.Client`; the
/// verdict is the one of the object it resolves to, never the one its sklearn-shaped name would earn.
const SKLEARN_REEXPORTS: &[(&str, &str, &str, &str)] = &[
    ("sklearn._cyutility", "Enum", "_cyutility", "Enum"),
    ("sklearn.callback._progressbar", "Queue", "queue", "Queue"),
    (
        "sklearn.callback._progressbar",
        "Thread",
        "threading",
        "Thread",
    ),
    (
        "sklearn.callback._transport",
        "Client",
        "multiprocessing.connection",
        "Client",
    ),
    (
        "sklearn.callback._transport",
        "Connection",
        "multiprocessing.connection",
        "Connection",
    ),
    (
        "sklearn.callback._transport",
        "Listener",
        "multiprocessing.connection",
        "Listener",
    ),
    (
        "sklearn.callback._transport",
        "Thread",
        "threading",
        "Thread",
    ),
    (
        "sklearn.cluster._optics",
        "SparseEfficiencyWarning",
        "scipy.sparse._base",
        "SparseEfficiencyWarning",
    ),
    (
        "sklearn.cluster._spectral",
        "LinAlgError",
        "numpy.linalg",
        "LinAlgError",
    ),
    (
        "sklearn.compose._column_transformer",
        "Counter",
        "collections",
        "Counter",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting._gradient_boosting",
        "Y_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting._predictor",
        "Y_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.binning",
        "X_BINNED_DTYPE",
        "numpy",
        "uint8",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.binning",
        "X_BITSET_INNER_DTYPE",
        "numpy",
        "uint32",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.binning",
        "X_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.common",
        "G_H_DTYPE",
        "numpy",
        "float32",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.common",
        "X_BINNED_DTYPE",
        "numpy",
        "uint8",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.common",
        "X_BITSET_INNER_DTYPE",
        "numpy",
        "uint32",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.common",
        "X_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.common",
        "Y_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
        "G_H_DTYPE",
        "numpy",
        "float32",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
        "X_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
        "Y_DTYPE",
        "numpy",
        "float64",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.grower",
        "X_BITSET_INNER_DTYPE",
        "numpy",
        "uint32",
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.predictor",
        "Y_DTYPE",
        "numpy",
        "float64",
    ),
    ("sklearn.impute._base", "Counter", "collections", "Counter"),
    (
        "sklearn.metrics._scorer",
        "Counter",
        "collections",
        "Counter",
    ),
    (
        "sklearn.model_selection._search",
        "MaskedArray",
        "numpy.ma",
        "MaskedArray",
    ),
    (
        "sklearn.model_selection._validation",
        "Counter",
        "collections",
        "Counter",
    ),
    ("sklearn.pipeline", "Counter", "collections", "Counter"),
    (
        "sklearn.preprocessing._polynomial",
        "BSpline",
        "scipy.interpolate._bsplines",
        "BSpline",
    ),
    ("sklearn.tree._export", "StringIO", "_io", "StringIO"),
    (
        "sklearn.utils._available_if",
        "MethodType",
        "builtins",
        "method",
    ),
    ("sklearn.utils._encode", "Counter", "collections", "Counter"),
    (
        "sklearn.utils._repr_html.estimator",
        "Path",
        "pathlib",
        "Path",
    ),
    (
        "sklearn.utils._repr_html.estimator",
        "StringIO",
        "_io",
        "StringIO",
    ),
    (
        "sklearn.utils._repr_html.fitted_attributes",
        "UserDict",
        "collections",
        "UserDict",
    ),
    (
        "sklearn.utils._repr_html.params",
        "UserDict",
        "collections",
        "UserDict",
    ),
    (
        "sklearn.utils._test_common.instance_generator",
        "SkipTest",
        "unittest.case",
        "SkipTest",
    ),
    ("sklearn.utils.discovery", "Path", "pathlib", "Path"),
    (
        "sklearn.utils.estimator_checks",
        "SkipTest",
        "unittest.case",
        "SkipTest",
    ),
    (
        "sklearn.utils.multiclass",
        "VisibleDeprecationWarning",
        "numpy.exceptions",
        "VisibleDeprecationWarning",
    ),
    (
        "sklearn.utils.sparsefuncs",
        "LinearOperator",
        "scipy.sparse.linalg._interface",
        "LinearOperator",
    ),
    (
        "sklearn.utils.validation",
        "ComplexWarning",
        "numpy.exceptions",
        "ComplexWarning",
    ),
    (
        "sklearn.utils.validation",
        "Parameter",
        "inspect",
        "Parameter",
    ),
];

/// The defining module and name of a scikit-learn re-export (an attribute walk keeps its tail).
fn resolve_reexport(module: &str, name: &str) -> Option<(&'static str, String)> {
    let (head, tail) = match name.split_once('.') {
        Some((head, tail)) => (head, Some(tail)),
        None => (name, None),
    };
    SKLEARN_REEXPORTS
        .iter()
        .find(|(m, n, _, _)| *m == module && *n == head)
        .map(|(_, _, home, target)| match tail {
            Some(tail) => (*home, format!("{target}.{tail}")),
            None => (*home, (*target).to_owned()),
        })
}

/// scikit-learn estimator and helper *classes*. Functions are not allowed (a class constructor only stores
/// its parameters; a function runs), and modules that fetch data or run code are excluded.
fn sklearn_estimator(module: &str, name: &str) -> bool {
    let in_sklearn = (module == "sklearn" || module.starts_with("sklearn."))
        && !module.split('.').any(|part| part == "tests")
        && !SKLEARN_EXCLUDED
            .iter()
            .any(|ex| module == *ex || module.starts_with(&format!("{ex}.")));
    if !in_sklearn || name.contains('.') {
        return false;
    }
    // Classes, including private ones such as `_Scorer`; Cython `newObj` helpers (`cls.__new__(cls)`) of
    // the tree and distance modules; metric functions referenced by scorers (computing a metric is harmless).
    let class = name
        .trim_start_matches('_')
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase());
    class || name == "newObj" || (module.starts_with("sklearn.metrics") && !name.starts_with('_'))
}

/// scipy sparse matrix/array classes (TF-IDF and one-hot pipelines store them).
fn scipy_sparse(module: &str, name: &str) -> bool {
    module.starts_with("scipy.sparse")
        && !name.contains('.')
        && (name.ends_with("_matrix") || name.ends_with("_array"))
}

/// Known gadgets: module prefixes (matched on whole dotted components) with what they give an attacker.
const GADGET_MODULES: &[(&str, &str)] = &[
    (
        "os",
        "runs shell commands, spawns processes and reads or writes any file",
    ),
    (
        "posix",
        "the os module's C implementation on Unix: runs shell commands and writes files",
    ),
    (
        "nt",
        "the os module's C implementation on Windows: runs shell commands and writes files",
    ),
    ("subprocess", "spawns arbitrary processes"),
    ("pty", "spawns a shell on a pseudo-terminal"),
    ("importlib", "imports any module, running its code"),
    ("runpy", "runs any module or script as __main__"),
    (
        "code",
        "an interactive interpreter: compiles and runs source",
    ),
    ("codeop", "compiles Python source"),
    (
        "pip",
        "installs packages (arbitrary setup.py code) from anywhere",
    ),
    ("ensurepip", "bootstraps pip, running its installer"),
    ("venv", "creates environments and runs pip in them"),
    ("asyncio.subprocess", "spawns arbitrary processes"),
    (
        "asyncio.unix_events",
        "subprocess transport internals that spawn processes",
    ),
    (
        "asyncio.windows_events",
        "subprocess transport internals that spawn processes",
    ),
    (
        "asyncio.base_events",
        "event-loop internals that spawn subprocesses",
    ),
    (
        "multiprocessing",
        "spawns processes (multiprocessing.util.spawnv_passfds runs any program)",
    ),
    ("idlelib", "IDLE internals that run code and shell commands"),
    ("lib2to3", "loads and runs refactoring fixers by name"),
    ("profile", "profile.run executes a source string"),
    ("cProfile", "cProfile.run executes a source string"),
    ("trace", "trace.Trace.run executes a source string"),
    ("timeit", "timeit compiles and runs a source string"),
    (
        "pydoc",
        "pydoc.pipepager and locate run commands and import modules",
    ),
    (
        "webbrowser",
        "launches programs (the browser command is attacker-chosen)",
    ),
    (
        "socket",
        "opens network connections: exfiltration or reverse shells",
    ),
    ("ssl", "opens network connections"),
    (
        "urllib",
        "fetches URLs: downloads payloads or exfiltrates data",
    ),
    ("http", "opens HTTP connections"),
    ("ftplib", "opens FTP connections"),
    ("imaplib", "opens IMAP connections"),
    ("smtplib", "sends mail: exfiltration"),
    ("poplib", "opens POP3 connections"),
    ("telnetlib", "opens telnet connections"),
    ("nntplib", "opens NNTP connections"),
    ("xmlrpc", "calls remote procedures"),
    ("shutil", "copies, moves and deletes files and trees"),
    ("tempfile", "creates files"),
    ("ctypes", "calls native functions in any shared library"),
    ("_ctypes", "calls native functions in any shared library"),
    (
        "marshal",
        "deserialises Python bytecode, which types.FunctionType then runs",
    ),
    (
        "types",
        "FunctionType/CodeType build functions from raw bytecode",
    ),
    ("_interpreters", "runs source in a sub-interpreter"),
    ("_xxsubinterpreters", "runs source in a sub-interpreter"),
    ("_posixsubprocess", "fork_exec spawns processes"),
    ("_winapi", "CreateProcess and other Windows API calls"),
    ("sys", "modifies the interpreter (modules, path, hooks)"),
    (
        "pickle",
        "a nested unpickler: runs another pickle's payload",
    ),
    (
        "_pickle",
        "a nested unpickler: runs another pickle's payload",
    ),
    (
        "cPickle",
        "a nested unpickler: runs another pickle's payload",
    ),
    ("dill", "unpickles functions and code objects"),
    ("cloudpickle", "unpickles functions and code objects"),
    (
        "commands",
        "Python 2 commands.getoutput runs shell commands (mapped to subprocess)",
    ),
    ("popen2", "Python 2 process spawning"),
    ("socketserver", "opens listening network servers"),
    (
        "queue",
        "thread-safe queues, used to chain gadgets across threads",
    ),
    (
        "urllib2",
        "Python 2 URL fetching (mapped to urllib.request)",
    ),
    (
        "httplib",
        "Python 2 HTTP connections (mapped to http.client)",
    ),
    ("shelve", "opens pickle-backed databases"),
    ("joblib.load", "joblib.load unpickles another file"),
    (
        "joblib.numpy_pickle.load",
        "joblib.load unpickles another file",
    ),
    (
        "joblib.numpy_pickle.NDArrayWrapper",
        "its BUILD runs np.load(allow_pickle=True) on a side file",
    ),
    (
        "joblib.Parallel",
        "runs any callable it is given, in worker processes",
    ),
    (
        "joblib.parallel",
        "runs any callable it is given, in worker processes",
    ),
    (
        "joblib.Memory",
        "creates cache directories and unpickles cached results",
    ),
    (
        "joblib.memory",
        "creates cache directories and unpickles cached results",
    ),
    ("torch.hub", "downloads and runs code from repositories"),
    (
        "torch.load",
        "a nested torch.load: runs another file's pickle",
    ),
    (
        "torch.serialization.load",
        "a nested torch.load: runs another file's pickle",
    ),
    (
        "torch.storage._load_from_bytes",
        "runs torch.load on embedded bytes",
    ),
    ("torch.jit", "loads TorchScript programs"),
    ("torch._C", "native torch internals"),
    ("torch.ops", "calls native operators, including file IO"),
    ("torch._dynamo", "compiles and runs code"),
    ("torch._inductor", "compiles and runs generated code"),
    (
        "torch.utils.cpp_extension",
        "compiles and loads native code",
    ),
    (
        "numpy.load",
        "loads arrays, with allow_pickle a nested unpickler",
    ),
    ("numpy.lib.npyio", "numpy file loading, including pickles"),
    (
        "numpy.testing",
        "numpy.testing._private.utils.runstring executes source",
    ),
    ("numpy.f2py", "compiles and runs code"),
    ("numpy.distutils", "runs compilers and build commands"),
    ("uuid._get_command_stdout", "runs external programs"),
    (
        "platform",
        "platform._syscmd_file and friends run external programs",
    ),
    ("signal", "installs signal handlers"),
    ("threading", "starts threads running any callable"),
    ("_thread", "starts threads running any callable"),
    ("bdb", "the debugger framework runs source strings"),
    ("pdb", "the debugger runs source strings"),
    ("doctest", "doctest.debug_script runs source"),
    ("inspect", "reaches frames, globals and source"),
    ("pkgutil", "pkgutil.resolve_name imports modules"),
    ("zipimport", "imports code from archives"),
    ("site", "alters import paths and runs .pth code"),
    ("sysconfig", "reads interpreter configuration"),
    ("distutils", "runs compilers and build commands"),
    ("setuptools", "runs build commands"),
    (
        "logging.config",
        "logging.config.listen/fileConfig evaluate configuration as code",
    ),
    ("tarfile", "extracts archives anywhere on disk"),
    ("zipfile", "extracts archives anywhere on disk"),
    ("io", "opens files for reading or writing"),
    ("_io", "opens files for reading or writing"),
    ("codecs", "codecs.open reads and writes files"),
    ("sqlite3", "opens database files and loads extensions"),
    ("dbm", "opens database files"),
    ("tkinter", "GUI toolkit that evaluates Tcl"),
    ("_tkinter", "evaluates Tcl"),
    ("gc", "reaches every live object"),
    (
        "operator",
        "attrgetter/methodcaller turn strings into attribute access and calls",
    ),
    ("functools", "partial/reduce chain calls together"),
    (
        "keras.models",
        "loads other models (Lambda layers run bytecode)",
    ),
    ("tensorflow", "file IO and code execution through TF ops"),
];

/// Exact gadgets inside otherwise harmless modules.
const GADGET_NAMES: &[(&str, &str, &str)] = &[
    ("builtins", "eval", "evaluates a source string"),
    ("builtins", "exec", "executes a source string"),
    ("builtins", "compile", "compiles source to a code object"),
    (
        "builtins",
        "getattr",
        "reaches any attribute, e.g. os.system, from an object",
    ),
    (
        "builtins",
        "setattr",
        "overwrites attributes of modules and classes",
    ),
    (
        "builtins",
        "delattr",
        "deletes attributes of modules and classes",
    ),
    ("builtins", "__import__", "imports any module"),
    ("builtins", "open", "opens any file for reading or writing"),
    ("builtins", "breakpoint", "starts a debugger"),
    ("builtins", "input", "reads from the terminal"),
    ("builtins", "globals", "reaches the module namespace"),
    ("builtins", "locals", "reaches local variables"),
    ("builtins", "vars", "reaches object namespaces"),
    ("builtins", "type", "creates classes at load time"),
    ("builtins", "memoryview", "reaches raw memory of buffers"),
    (
        "builtins",
        "help",
        "starts the pydoc pager, which runs commands",
    ),
    ("builtins", "exit", "exits the process"),
    ("builtins", "quit", "exits the process"),
    ("builtins", "print", "writes to files"),
    ("builtins", "super", "reaches parent-class internals"),
    ("builtins", "classmethod", "wraps functions"),
    ("builtins", "staticmethod", "wraps functions"),
    ("builtins", "property", "wraps functions"),
    (
        "builtins",
        "map",
        "calls a function over arguments, chaining gadgets",
    ),
    (
        "builtins",
        "filter",
        "calls a function over arguments, chaining gadgets",
    ),
    ("builtins", "apply", "calls any function (Python 2)"),
    ("builtins", "execfile", "runs a file (Python 2)"),
    ("builtins", "reload", "re-imports a module"),
    ("builtins", "file", "opens files (Python 2)"),
    ("collections", "namedtuple", "builds classes from strings"),
    (
        "copyreg",
        "add_extension",
        "rewires the extension registry used by EXT opcodes",
    ),
    (
        "copyreg",
        "_inverted_registry",
        "the extension registry used by EXT opcodes",
    ),
    ("_codecs", "open", "opens files"),
];

/// The gadget this global reaches, if any. Dotted names are attribute walks: `("glob", "os.system")` is
/// `glob.os.system`, which is `os.system`, so every suffix of the walk is checked as a module path too.
pub fn gadget(module: &str, name: &str) -> Option<(&'static str, &'static str)> {
    let module = py3_module(module);
    let full = if name.is_empty() {
        module.to_owned()
    } else {
        format!("{module}.{name}")
    };
    let parts: Vec<&str> = full.split('.').collect();
    let module_parts = module.split('.').count();
    // The walk may start at the module itself or at any attribute of the name, deepest first:
    // `glob.os.system` is checked as `system`, `os.system`, then `glob.os.system`. Components of the module
    // path itself are not starts: `mypkg.io.Reader` is not `io.Reader`.
    let starts = (module_parts..parts.len()).rev().chain(std::iter::once(0));
    for start in starts {
        let tail = &parts[start..];
        for &(module_prefix, why) in GADGET_MODULES {
            let prefix: Vec<&str> = module_prefix.split('.').collect();
            if tail.len() >= prefix.len() && tail[..prefix.len()] == prefix[..] {
                return Some((module_prefix, why));
            }
        }
        if tail.len() >= 2 {
            let owner = py3_module(tail[0]);
            for &(gm, gn, why) in GADGET_NAMES {
                if owner == gm && tail[1] == gn {
                    return Some((gn, why));
                }
            }
            // `_compat_pickle.NAME_MAPPING`: `__builtin__.reduce` is `functools.reduce`, `intern` is
            // `sys.intern`.
            if owner == "builtins" && matches!(tail[1], "reduce" | "intern") {
                return Some((
                    "functools",
                    "Python 2 builtin mapped to functools.reduce / sys.intern",
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_aegis_toml_serves_the_scanner_and_the_gateway() {
        let text = "[server]\ndata_dir = \"data\"\n\n[checks]\nencrypt_objects = true\n\n[[model]]\nname = \"m\"\n\n\
                    [scan]\nallow = [\"mylab.models.Net\"]\n";
        let (policy, _) = Policy::config_from_toml(text, "aegis.toml").unwrap();
        assert!(policy.extra().any(|e| e == "mylab.models.Net"));
        // A misspelt section is still an error.
        assert!(Policy::config_from_toml("[scna]\nallow = []\n", "aegis.toml").is_err());
    }

    fn v(module: &str, name: &str) -> Verdict {
        Policy::default().verdict(module, name)
    }

    #[test]
    fn pytorch_state_dict_globals_are_allowed() {
        assert_eq!(
            v("torch._utils", "_rebuild_tensor_v2"),
            Verdict::Allowed("pytorch")
        );
        assert_eq!(v("torch", "FloatStorage"), Verdict::Allowed("pytorch"));
        assert_eq!(
            v("collections", "OrderedDict"),
            Verdict::Allowed("collections")
        );
        assert_eq!(v("__builtin__", "set"), Verdict::Allowed("builtins"));
        // `_compat_pickle.NAME_MAPPING`: Python 2's xrange is range.
        assert_eq!(v("__builtin__", "xrange"), Verdict::Allowed("builtins"));
        assert!(matches!(
            v("__builtin__", "execfile"),
            Verdict::Gadget { .. }
        ));
        assert_eq!(
            v("numpy.matrixlib.defmatrix", "matrix"),
            Verdict::Allowed("numpy")
        );
        assert_eq!(v("argparse", "Namespace"), Verdict::Allowed("argparse"));
        assert_eq!(
            v("numpy.core.multiarray", "_reconstruct"),
            Verdict::Allowed("numpy")
        );
        // What scikit-learn 1.9 and NumPy 2 write with `pickle.HIGHEST_PROTOCOL`.
        for (module, name) in [
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy.ma", "MaskedArray"),
            ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ] {
            assert_eq!(
                v(module, name),
                Verdict::Allowed("numpy"),
                "{module}.{name}"
            );
        }
        // Their neighbours are not.
        assert_eq!(v("numpy._core.numeric", "fromfile"), Verdict::NotAllowed);
        assert_eq!(v("numpy.ma", "load"), Verdict::NotAllowed);
    }

    #[test]
    fn sklearn_classes_allowed_but_not_functions_or_testing_modules() {
        assert_eq!(
            v("sklearn.linear_model._logistic", "LogisticRegression"),
            Verdict::Allowed("scikit-learn")
        );
        assert_eq!(v("sklearn.utils", "resample"), Verdict::NotAllowed);
        assert_ne!(
            v("sklearn.utils._testing", "AssertRaisesRegexp"),
            Verdict::Allowed("scikit-learn")
        );
    }

    #[test]
    fn gadgets_are_recognised_through_attribute_walks() {
        assert!(matches!(
            v("os", "system"),
            Verdict::Gadget { matched: "os", .. }
        ));
        assert!(matches!(v("posix", "system"), Verdict::Gadget { .. }));
        assert!(matches!(
            v("glob", "os.system"),
            Verdict::Gadget { matched: "os", .. }
        ));
        assert!(matches!(v("builtins", "eval"), Verdict::Gadget { .. }));
        assert!(matches!(
            v("__builtin__", "getattr"),
            Verdict::Gadget { .. }
        ));
        assert!(matches!(
            v("torch.storage", "_load_from_bytes"),
            Verdict::Gadget { .. }
        ));
        assert!(matches!(
            v("some_pkg", "x.subprocess.Popen"),
            Verdict::Gadget {
                matched: "subprocess",
                ..
            }
        ));
    }

    #[test]
    fn user_prefixes_never_admit_gadgets_or_attribute_walks() {
        let mut policy = Policy::default();
        policy.allow("lightning.*").unwrap();
        assert!(matches!(
            policy.verdict("lightning.fabric.utilities.cloud_io", "os.system"),
            Verdict::Gadget { .. }
        ));
        assert_eq!(
            policy.verdict("lightning.fabric", "Thing.attr"),
            Verdict::NotAllowed
        );
        policy.allow("os.system").unwrap();
        assert!(matches!(
            policy.verdict("os", "system"),
            Verdict::Gadget { .. }
        ));
    }

    #[test]
    fn sklearn_reexports_are_judged_as_what_they_resolve_to() {
        for name in ["Client", "Listener", "Client.__init__"] {
            assert!(
                matches!(
                    v("sklearn.callback._transport", name),
                    Verdict::Gadget { .. }
                ),
                "{name}"
            );
        }
        assert_eq!(
            v("sklearn.model_selection._search", "MaskedArray"),
            Verdict::Allowed("numpy")
        );
        assert_eq!(
            v("sklearn.pipeline", "Counter"),
            Verdict::Allowed("collections")
        );
        assert_eq!(
            v("sklearn.pipeline", "Pipeline"),
            Verdict::Allowed("scikit-learn"),
            "a class defined in sklearn stays allowed"
        );
    }

    #[test]
    fn pandas_frames_are_allowed_but_not_pandas_io() {
        for (module, name) in [
            ("pandas", "DataFrame"),
            ("pandas.core.frame", "DataFrame"),
            ("pandas._libs.internals", "_unpickle_block"),
            ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
            ("pandas.core.arrays.integer", "Int64Dtype"),
            ("pandas._libs.tslibs.offsets", "Day"),
        ] {
            assert_eq!(
                v(module, name),
                Verdict::Allowed("pandas"),
                "{module}.{name}"
            );
        }
        for (module, name) in [("pytz", "_p"), ("zoneinfo", "ZoneInfo._unpickle")] {
            assert_eq!(
                v(module, name),
                Verdict::Allowed("builtins"),
                "{module}.{name}"
            );
        }
        assert_ne!(v("pytz", "timezone.open"), Verdict::Allowed("builtins"));
        for (module, name) in [
            ("pandas", "read_pickle"),
            ("pandas.io.pickle", "read_pickle"),
            ("pandas", "read_csv"),
            ("pandas.core.frame", "DataFrame.to_csv"),
            ("pandas.core.arrays.integer", "coerce_to_array"),
        ] {
            assert_ne!(
                v(module, name),
                Verdict::Allowed("pandas"),
                "{module}.{name}"
            );
        }
    }

    #[test]
    fn sklearn_helpers_and_joblib_reexports() {
        assert_eq!(
            v("sklearn.neighbors._kd_tree", "newObj"),
            Verdict::Allowed("scikit-learn")
        );
        assert_eq!(
            v("sklearn.metrics._scorer", "_Scorer"),
            Verdict::Allowed("scikit-learn")
        );
        assert_eq!(v("sklearn.utils._joblib", "Parallel"), Verdict::NotAllowed);
        assert!(matches!(
            v("joblib.numpy_pickle", "NDArrayWrapper"),
            Verdict::Gadget { .. }
        ));
        assert!(matches!(v("commands", "getoutput"), Verdict::Gadget { .. }));
        assert!(matches!(v("__builtin__", "reduce"), Verdict::Gadget { .. }));
        assert!(matches!(
            v("cPickle", "loads"),
            Verdict::Gadget {
                matched: "pickle",
                ..
            }
        ));
        assert!(matches!(
            v("SocketServer", "TCPServer"),
            Verdict::Gadget { .. }
        ));
    }

    #[test]
    fn unknown_globals_are_not_allowed_and_not_gadgets() {
        assert_eq!(v("mylab.models", "FraudNet"), Verdict::NotAllowed);
        assert_eq!(v("torch.nn.modules.linear", "linear"), Verdict::NotAllowed);
        assert_eq!(
            v("torch.nn.modules.linear", "Linear"),
            Verdict::Allowed("pytorch")
        );
        assert_eq!(
            v("torch.jit._pickle", "build_intlist"),
            Verdict::Allowed("torchscript")
        );
        assert!(matches!(v("torch.jit", "load"), Verdict::Gadget { .. }));
        assert!(matches!(
            v("torch.jit._pickle", "os.system"),
            Verdict::Gadget { .. }
        ));
        assert_eq!(
            v("__torch__.torch.nn.modules.linear", "Linear"),
            Verdict::Allowed("torchscript")
        );
        assert!(matches!(
            v("__torch__", "os.system"),
            Verdict::Gadget { .. }
        ));
        assert_eq!(
            v("__torch__.torch.classes.acme", "Shell"),
            Verdict::NotAllowed
        );
        assert_eq!(
            v(
                "__torch__.torch.classes.quantized",
                "LinearPackedParamsBase"
            ),
            Verdict::Allowed("torchscript")
        );
    }

    #[test]
    fn user_entries_extend_the_allow_list() {
        let mut policy = Policy::from_toml(
            "[scan]\nallow = [\"mylab.models.FraudNet\", \"lightning.*\"]\n",
            "aegis.toml",
        )
        .unwrap();
        assert_eq!(
            policy.verdict("mylab.models", "FraudNet"),
            Verdict::Allowed("policy")
        );
        assert_eq!(
            policy.verdict("lightning.fabric", "Thing"),
            Verdict::Allowed("policy")
        );
        assert_eq!(policy.verdict("lightningx", "Thing"), Verdict::NotAllowed);
        assert!(policy.allow("os system").is_err());
        assert!(Policy::from_toml("[scan]\nallowed = []\n", "p.toml").is_err());
        let (_, limits) = Policy::config_from_toml("[limits]\nmax_depth = 3\n", "p.toml").unwrap();
        assert_eq!(limits.max_depth, 3);
    }
}

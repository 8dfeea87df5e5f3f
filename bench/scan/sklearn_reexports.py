"""Print the names scikit-learn modules re-export from other packages, as Rust tuples for
crates/scan/src/policy.rs `SKLEARN_REEXPORTS`: (module, name, defining module, name there).

The scanner allows scikit-learn classes by where they are found; a class that merely *lives* in a sklearn
module namespace but is defined elsewhere (multiprocessing.connection.Client in sklearn.callback._transport)
must be judged as what it is. Abstract base classes and typing aliases (numbers, abc, typing) are left out:
they cannot be called to any effect. Run with the scikit-learn version to cover:

    python bench/scan/sklearn_reexports.py
"""
import importlib
import pkgutil
import warnings

warnings.filterwarnings("ignore")
import sklearn  # noqa: E402

EXCLUDED = ("sklearn.utils._testing", "sklearn.utils._joblib", "sklearn.utils.parallel", "sklearn.datasets",
            "sklearn.externals", "sklearn.utils._show_versions", "sklearn.utils.fixes", "sklearn.experimental",
            "sklearn.conftest")
HARMLESS = ("numbers", "abc", "collections.abc", "typing")

rows = set()
for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
    name = info.name
    if ".tests" in name or any(name == e or name.startswith(e + ".") for e in EXCLUDED):
        continue
    try:
        module = importlib.import_module(name)
    except Exception:  # optional dependencies
        continue
    for attr, obj in vars(module).items():
        bare = attr.lstrip("_")
        if not bare or not bare[0].isupper():
            continue  # the scanner allows only class-shaped names from sklearn
        home = getattr(obj, "__module__", None)
        if not home or home.startswith("sklearn") or home in HARMLESS:
            continue
        target = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if not isinstance(target, str):
            target = type(obj).__qualname__  # an instance (numpy dtype objects): judged as its type
            home = type(obj).__module__
        rows.add((name, attr, home, target))

print(f"// scikit-learn {sklearn.__version__}")
for row in sorted(rows):
    print('    ("{}", "{}", "{}", "{}"),'.format(*row))

import loranas


def pytest_report_header(config):
    return [f"loranas {loranas.__version__} from {loranas.__file__}",
            f"libloranas {loranas.version()} (ABI {loranas.abi_version()}) from {loranas.library_path()}"]

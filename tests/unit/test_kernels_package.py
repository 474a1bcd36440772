"""Our `kernels` package must not pass for Hugging Face's kernel hub, which `transformers` probes
at import under the same name."""


def test_our_kernels_package_does_not_pass_for_the_kernel_hub():
    import kernels  # noqa: F401  (ours, on the path)
    from transformers.utils import is_kernels_available

    assert not is_kernels_available()

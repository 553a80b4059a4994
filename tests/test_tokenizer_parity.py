"""The tokenizer reproduces what the official implementation computed on the fixture checkpoint."""

import torch


def test_codes_identical(official_tokenizer, reference):
    codes = official_tokenizer.encode(reference["audio"], sample_rate=24000)
    assert codes.length == 60000 and codes.num_windows == 3
    for i in range(16):
        assert torch.equal(codes[i], reference[f"codes.{i}"]), f"scale {i} differs"


def test_reconstruction_matches(official_tokenizer, reference):
    codes = official_tokenizer.encode(reference["audio"], sample_rate=24000)
    recon = official_tokenizer.decode(codes)
    assert recon.shape == (2, 1, 60000) and recon.dtype == torch.float32
    torch.testing.assert_close(recon, reference["recon"], atol=1e-4, rtol=0)


def test_plain_list_decodes_whole_windows(official_tokenizer, reference):
    codes = [reference[f"codes.{i}"] for i in range(16)]
    padded = official_tokenizer.decode(codes)
    assert padded.shape == (2, 1, 72000)
    torch.testing.assert_close(padded, reference["recon_padded"], atol=1e-4, rtol=0)


def test_phi_table_is_the_official_one(official_tokenizer):
    assert official_tokenizer.quantizer.phi_index == (0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5)

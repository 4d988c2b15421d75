"""FLOPs at static shapes."""

from tfopt.graph.flops import einsum_flops


def test_einsum_flops_with_ellipsis():
    assert einsum_flops("...d,dh->...h", [[2, 5, 8], [8, 3]]) == 2 * 2 * 5 * 8 * 3
    assert einsum_flops("bij,bjk->bik", [[4, 2, 3], [4, 3, 5]]) == 2 * 4 * 2 * 3 * 5

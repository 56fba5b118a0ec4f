using MegaMoe.Tests.Reference;

namespace MegaMoe.Tests.Scenarios;

/// <summary>Tensor-core magnitudes (<see cref="ReferenceGemm.Magnitude"/>) of every output of a GEMM scenario.</summary>
public static class TensorCoreMagnitudes
{
    /// <summary>
    /// [rows, N] magnitudes, where <paramref name="rowSource"/> maps an output row to its A row and expert
    /// (expert -1: the row is not computed, magnitude 0).
    /// </summary>
    public static double[] ForRows(Operand a, Operand b, int rows, Func<int, (int ARow, int Expert)> rowSource)
    {
        int n = b.Rows;
        var magnitudes = new double[rows * n];
        for (int row = 0; row < rows; row++)
        {
            (int aRow, int expert) = rowSource(row);
            if (expert < 0)
            {
                continue;
            }

            for (int column = 0; column < n; column++)
            {
                magnitudes[(row * n) + column] = ReferenceGemm.Magnitude(a, aRow, b, expert, column);
            }
        }

        return magnitudes;
    }
}

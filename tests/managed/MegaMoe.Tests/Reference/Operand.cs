using MegaMoe.Tests.Support;

namespace MegaMoe.Tests.Reference;

/// <summary>
/// A host FP8 GEMM operand: <see cref="Codes"/> [Batches, Rows, Columns] with block scales. For A the scales are
/// per row and 128 columns ([Batches * Rows, Columns/128]); for B per 128 x 128 block ([Batches, Rows/128, Columns/128]).
/// </summary>
/// <param name="Codes">FP8 E4M3 codes, row-major.</param>
/// <param name="Scales">Float32 block scales, row-major.</param>
/// <param name="Batches">Experts (1 for a plain matrix).</param>
/// <param name="Rows">Rows per batch.</param>
/// <param name="Columns">Columns (K).</param>
public sealed record Operand(byte[] Codes, float[] Scales, int Batches, int Rows, int Columns)
{
    /// <summary>Random activations operand: rows x K codes with per-row-group scales.</summary>
    public static Operand RandomActivations(Random random, int rows, int columns) =>
        new(random.NextFp8Array((long)rows * columns), random.NextScales((long)rows * (columns / 128)), 1, rows, columns);

    /// <summary>Random weights operand: experts x rows x K codes with 128x128 block scales.</summary>
    public static Operand RandomWeights(Random random, int experts, int rows, int columns) =>
        new(random.NextFp8Array((long)experts * rows * columns),
            random.NextScales((long)experts * (rows / 128) * (columns / 128)),
            experts,
            rows,
            columns);

    /// <summary>The scale shape of an activations operand: [Rows, Columns/128] (with a leading batch dimension when given).</summary>
    public long[] ActivationScaleShape() =>
        Batches == 1 ? [Rows, Columns / 128] : [Batches, Rows, Columns / 128];

    /// <summary>The shape of the codes: [Rows, Columns] or [Batches, Rows, Columns].</summary>
    public long[] Shape(bool batched) => batched ? [Batches, Rows, Columns] : [Rows, Columns];

    /// <summary>The 128x128 block scale shape.</summary>
    public long[] WeightScaleShape(bool batched) =>
        batched ? [Batches, Rows / 128, Columns / 128] : [Rows / 128, Columns / 128];

    /// <summary>The exact value of element (batch, row, column): code times its scale, in double.</summary>
    public double Value(int batch, int row, int column, bool weightBlocks)
    {
        int kBlocks = Columns / 128;
        float code = Float8E4M3.FromRawValue(Codes[(((batch * Rows) + row) * Columns) + column]);
        float scale = weightBlocks
            ? Scales[(((batch * (Rows / 128)) + (row / 128)) * kBlocks) + (column / 128)]
            : Scales[(((batch * Rows) + row) * kBlocks) + (column / 128)];
        return (double)code * scale;
    }
}

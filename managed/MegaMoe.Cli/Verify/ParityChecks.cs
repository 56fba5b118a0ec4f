using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Cli.Running;

namespace MegaMoe.Cli.Verify;

/// <summary>
/// The checks of <c>megamoe verify</c>: each operation the layer is built from, and the layer itself, run on the backend
/// under test and on the CPU reference backend with the same inputs. Bounds are those of the GPU test suite: quantization
/// bitwise, GEMMs and the layer within 1e-4 of the CPU result in the docs/NUMERICS.md measure (Hopper's FP8 tensor cores
/// accumulate each 128-wide block in a truncated accumulator, so bitwise GEMM equality is not expected). An operation
/// the backend under test rejects as unsupported is a failed check; any other failure of an operation ends the command
/// with its error.
/// </summary>
internal static class ParityChecks
{
    public const double NumericLimit = 1e-4;

    public static IEnumerable<ParityCheck> Run(
        MoeContext target, MoeContext cpu, ParityProblem problem, ExpertSpecialization specialization, CancellationToken cancellationToken)
    {
        BFloat16[] x = problem.Inputs.X;
        int t = problem.Tokens;
        long h = problem.Shape.Hidden;

        // Quantized activations of the CPU feed the GEMMs on both backends, so a GEMM check isolates the GEMM.
        (byte[] q, float[] s) = Quantize(cpu, x, t, h);
        yield return Check(problem, "quantize-activations", 0, "FP8 codes and scales that differ bitwise", () =>
        {
            (byte[] qTarget, float[] sTarget) = Quantize(target, x, t, h);
            return q.Zip(qTarget).Count(p => p.First != p.Second)
                + s.Zip(sTarget).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
        });
        cancellationToken.ThrowIfCancellationRequested();

        (byte[] w, float[] ws) = problem.FirstExpertW13();
        float[] dense = GemmDense(cpu, q, s, w, ws, problem);
        yield return Check(problem, "gemm-dense", NumericLimit, "x . W13[0]^T, difference from the CPU backend", () =>
            Difference(GemmDense(target, q, s, w, ws, problem), dense));
        cancellationToken.ThrowIfCancellationRequested();

        float[] grouped = GemmGrouped(cpu, q, s, problem);
        yield return Check(problem, "gemm-grouped-offsets", NumericLimit, "routed rows sorted by expert . W13[e]^T, difference from the CPU backend", () =>
            Difference(GemmGrouped(target, q, s, problem), grouped));
        cancellationToken.ThrowIfCancellationRequested();

        float[] layer = LayerOutput(cpu, problem, specialization, cancellationToken);
        yield return Check(problem, "moe-layer", NumericLimit, "layer output, difference from the CPU backend", () =>
            Difference(LayerOutput(target, problem, specialization, cancellationToken), layer));
    }

    /// <summary>
    /// Runs <paramref name="measure"/> (the operation on the backend under test and its comparison) and grades it; an
    /// operation the backend rejects as unsupported fails the check, with the library's reason as the detail.
    /// </summary>
    internal static ParityCheck Check(ParityProblem problem, string check, double limit, string detail, Func<double> measure)
    {
        try
        {
            return ParityCheck.Compare(problem, check, measure(), limit, detail);
        }
        catch (MegaMoeUnsupportedException e)
        {
            return new ParityCheck(problem.Shape.Name, problem.Tokens, check, ParityCheck.Fail, null, limit, $"not supported on this backend: {e.NativeMessage}");
        }
    }

    private static float[] LayerOutput(MoeContext context, ParityProblem problem, ExpertSpecialization specialization, CancellationToken cancellationToken)
    {
        using ExpertTensors tensors = ExpertTensors.Upload(context, problem.Weights, cancellationToken: cancellationToken);
        MoeLayerOptions options = specialization.Apply(
            ExpertTensors.LayerOptions(problem.Weights, problem.Shape.TopK, Math.Max(problem.Tokens, 1), problem.Shape.RoutedScalingFactor));
        using MoeLayer layer = MoeLayer.Create(context, options, tensors.W13, tensors.W13Scales, tensors.W2, tensors.W2Scales, cancellationToken: cancellationToken);
        using DeviceTensor x = Upload(context, DataType.BFloat16, problem.Inputs.X, problem.Tokens, problem.Shape.Hidden);
        using DeviceTensor idx = Upload(context, DataType.Int32, problem.Inputs.TopkIdx, problem.Tokens, problem.Shape.TopK);
        using DeviceTensor weights = Upload(context, DataType.Float32, problem.Inputs.TopkWeights, problem.Tokens, problem.Shape.TopK);
        using DeviceTensor y = DeviceTensor.Allocate(context, DataType.BFloat16, problem.Tokens, problem.Shape.Hidden);
        layer.Forward(x, null, idx, weights, y);
        context.Synchronize();
        return Floats(y);
    }

    private static (byte[] Codes, float[] Scales) Quantize(MoeContext context, BFloat16[] values, int rows, long columns)
    {
        using DeviceTensor x = Upload(context, DataType.BFloat16, values, rows, columns);
        using DeviceTensor q = DeviceTensor.Allocate(context, DataType.Float8E4M3, rows, columns);
        using DeviceTensor s = DeviceTensor.Allocate(context, DataType.Float32, rows, ExpertWeightsExtensions.Blocks(columns));
        context.QuantizeActivations(x, q, s);
        context.Synchronize();
        return (q.ToArray<byte>(), s.ToArray<float>());
    }

    private static float[] GemmDense(MoeContext context, byte[] q, float[] s, byte[] w, float[] ws, ParityProblem problem)
    {
        long t = problem.Tokens, h = problem.Shape.Hidden, n = 2 * problem.Shape.Intermediate;
        using DeviceTensor a = Upload(context, DataType.Float8E4M3, q, t, h);
        using DeviceTensor aScales = Upload(context, DataType.Float32, s, t, ExpertWeightsExtensions.Blocks(h));
        using DeviceTensor b = Upload(context, DataType.Float8E4M3, w, n, h);
        using DeviceTensor bScales = Upload(context, DataType.Float32, ws, ExpertWeightsExtensions.Blocks(n), ExpertWeightsExtensions.Blocks(h));
        using DeviceTensor d = DeviceTensor.Allocate(context, DataType.BFloat16, t, n);
        context.GemmDense(a, aScales, b, bScales, d);
        context.Synchronize();
        return Floats(d);
    }

    private static float[] GemmGrouped(MoeContext context, byte[] q, float[] s, ParityProblem problem)
    {
        long h = problem.Shape.Hidden, n = 2 * problem.Shape.Intermediate, blocks = ExpertWeightsExtensions.Blocks(h);
        (int[] tokens, int[] offsets) = problem.SortedSlots();
        var rows = new byte[tokens.Length * h];
        var rowScales = new float[tokens.Length * blocks];
        for (int i = 0; i < tokens.Length; i++)
        {
            q.AsSpan((int)(tokens[i] * h), (int)h).CopyTo(rows.AsSpan((int)(i * h)));
            s.AsSpan((int)(tokens[i] * blocks), (int)blocks).CopyTo(rowScales.AsSpan((int)(i * blocks)));
        }

        using ExpertTensors experts = ExpertTensors.Upload(context, problem.Weights);
        using DeviceTensor a = Upload(context, DataType.Float8E4M3, rows, tokens.Length, h);
        using DeviceTensor aScales = Upload(context, DataType.Float32, rowScales, tokens.Length, blocks);
        using DeviceTensor offsetTensor = Upload(context, DataType.Int32, offsets, offsets.Length);
        using DeviceTensor d = DeviceTensor.Allocate(context, DataType.BFloat16, tokens.Length, n);
        context.GemmGroupedOffsets(a, aScales, experts.W13, experts.W13Scales, offsetTensor, d);
        context.Synchronize();
        return Floats(d);
    }

    private static DeviceTensor Upload<T>(MoeContext context, DataType dataType, T[] values, params ReadOnlySpan<long> shape)
        where T : unmanaged
    {
        DeviceTensor tensor = DeviceTensor.Allocate(context, dataType, shape);
        try
        {
            tensor.CopyFrom<T>(values);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    private static float[] Floats(DeviceTensor bf16) => Array.ConvertAll(bf16.ToArray<BFloat16>(), v => (float)v);

    private static double Difference(float[] x, float[] y) =>
        Float64Reference.Difference(Array.ConvertAll(x, v => (double)v), Array.ConvertAll(y, v => (double)v));
}

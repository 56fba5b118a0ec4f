using FluentAssertions;
using MegaMoe.Checkpoints.Experts;
using MegaMoe.Checkpoints.Reference;
using MegaMoe.Checkpoints.Synthetic;
using NUnit.Framework;

namespace MegaMoe.Checkpoints.Tests;

/// <summary>
/// The float64 oracle on layers whose output has a closed form, and its refusals. (The CPU layer is checked against it
/// within docs/NUMERICS.md's bound by MegaMoe.Tests and by <c>megamoe run</c>.)
/// </summary>
public sealed class Float64ReferenceTests
{
    private const int Size = 128;

    private static readonly SwiGluActivation GptOss = new(1.702, 1, 7);

    // Expert e: every code 1.0, so each gate (up) element is sum(x) times the gate (up) block scale and every w2 row sums
    // I activations times its scale. With the inputs below, expert 1's gate (16) exceeds the GPT-OSS clamp of 7 and
    // expert 2's up (-8) lies below -7. Powers of two, so the float32 scales are these values exactly.
    private static readonly (double Gate, double Up, double Down)[] Scales =
        [(0.015625, 0.03125, 0.5), (0.25, -0.03125, 0.25), (-0.0625, 0.25, 2)];

    [Test]
    public void EachTokenIsTheWeightedSumOfItsExpertsInClosedForm([Values] bool gptOss)
    {
        SwiGluActivation activation = gptOss ? GptOss : SwiGluActivation.DeepSeek;
        var inputs = new RoutedInputs(
            tokens: 2,
            topK: 2,
            x: [.. Enumerable.Repeat((BFloat16)0.5f, Size), .. Enumerable.Repeat((BFloat16)(-0.25f), Size)],
            topkIdx: [0, 1, 2, -1],
            topkWeights: [0.75f, 0.25f, 0.5f, 0.5f]);

        (double[] y, int used) = Float64Reference.Forward(new UniformExperts(Scales), inputs, 2.5, activation);

        used.Should().Be(3);
        double Expert(int e, double sumX) =>
            Scales[e].Down * Size * activation.Apply(Scales[e].Gate * sumX, Scales[e].Up * sumX);
        double token0 = 2.5 * ((0.75 * Expert(0, 64)) + (0.25 * Expert(1, 64)));
        double token1 = 2.5 * 0.5 * Expert(2, -32);
        y[..Size].Should().AllSatisfy(v => v.Should().BeApproximately(token0, 1e-12 * Math.Abs(token0)));
        y[Size..].Should().AllSatisfy(v => v.Should().BeApproximately(token1, 1e-12 * Math.Abs(token1)));
    }

    // Expected values: g / (1 + exp(-alpha * g)) * (u + beta) after the clamp, evaluated separately.
    [TestCase(1.0, 0.0, 0.0, 2.0, 3.0, 5.284782467867294)]
    [TestCase(1.702, 1.0, 7.0, 9.0, -8.0, -41.99971876981991)]
    [TestCase(1.702, 1.0, 7.0, -1.0, 2.0, -0.4626127022015361)]
    public void TheActivationClampsThenGates(double alpha, double beta, double clamp, double gate, double up, double expected)
    {
        new SwiGluActivation(alpha, beta, clamp).Apply(gate, up).Should().BeApproximately(expected, 1e-14 * Math.Abs(expected));
    }

    [Test]
    public void TheActivationOfLayerOptionsIsTheLayers()
    {
        var options = new MoeLayerOptions
        {
            Experts = 2, TopK = 1, Hidden = Size, Intermediate = Size, MaxTokens = 1,
            ActivationAlpha = 1.702f, ActivationBeta = 1f, ActivationClamp = 7f,
        };
        SwiGluActivation.Of(options).Should().Be(new SwiGluActivation(1.702f, 1f, 7f));
        SwiGluActivation.Of(options with { ActivationAlpha = 1f, ActivationBeta = 0f, ActivationClamp = 0f }).Should().Be(SwiGluActivation.DeepSeek);
    }

    [Test]
    public void InterleavedGateUpRowsGiveTheSameLayer()
    {
        var canonical = new SyntheticMoe(experts: 3, hidden: 256, intermediate: 256, seed: 5);
        var inputs = RoutedInputs.Random(4, 256, 3, 2, seed: 6);

        (double[] expected, _) = Float64Reference.Forward(canonical, inputs, 1);
        (double[] actual, _) = Float64Reference.Forward(new Interleaved(canonical), inputs, 1);

        actual.Should().Equal(expected);
    }

    [TestCase(3)]
    [TestCase(-2)]
    public void AnExpertOutsideTheLayerIsRefused(int expert)
    {
        var inputs = new RoutedInputs(2, 2, new BFloat16[2 * Size], [0, 1, 2, expert], new float[4]);
        FluentActions.Invoking(() => Float64Reference.Forward(new UniformExperts(Scales), inputs, 1))
            .Should().Throw<ArgumentException>().WithParameterName("inputs")
            .WithMessage($"topk_idx[1, 1] is {expert}; expected an expert in [0, 3) or -1 (dropped).*");
    }

    [Test]
    public void ActivationsOfAnotherHiddenSizeAreRefused()
    {
        var inputs = new RoutedInputs(2, 1, new BFloat16[2 * 256], [0, 1], new float[2]);
        FluentActions.Invoking(() => Float64Reference.Forward(new UniformExperts(Scales), inputs, 1))
            .Should().Throw<ArgumentException>().WithParameterName("inputs")
            .WithMessage("x holds 512 values; expected T * H = 2 * 128.*");
    }

    [Test]
    public void NoTokensGiveAnEmptyOutput()
    {
        (double[] y, int used) = Float64Reference.Forward(new UniformExperts(Scales), new RoutedInputs(0, 2, [], [], []), 1);
        y.Should().BeEmpty();
        used.Should().Be(0);
    }

    [Test]
    public void TheDifferenceMeasuresDirectionAndMagnitude()
    {
        double[] x = [1, -2, 3];
        Float64Reference.Difference(x, x).Should().Be(0);
        Float64Reference.Difference(x, x.Select(v => 2 * v).ToArray()).Should().BeApproximately(0.2, 1e-15, "1 - 2*2/(1+4)");
        Float64Reference.Difference(x, x.Select(v => -v).ToArray()).Should().Be(2);
        Float64Reference.Difference(new double[3], new double[3]).Should().Be(0);
        FluentActions.Invoking(() => Float64Reference.Difference(x, new double[2]))
            .Should().Throw<ArgumentException>().WithParameterName("y").WithMessage("y holds 2 values; expected 3, the length of x.*");
    }

    [TestCase(7168, 2048, 3e-3, TestName = "DeepSeek-V3 gets the tight bound")]
    [TestCase(2048, 1024, 3e-3, TestName = "The smallest layer with the tight bound")]
    [TestCase(4096, 768, 5e-3, TestName = "A narrow intermediate gets the loose bound")]
    [TestCase(1024, 2048, 5e-3, TestName = "A narrow hidden gets the loose bound")]
    [TestCase(128, 128, 5e-3, TestName = "The smallest layer")]
    public void TheBoundIsLooserOnlyForSmallLayers(long hidden, long intermediate, double bound) =>
        Float64Reference.Bound(hidden, intermediate).Should().Be(bound);

    // H = I = 128 (one scale block per projection); every FP8 code is 1.0 (0x38).
    private sealed class UniformExperts((double Gate, double Up, double Down)[] scales) : IExpertWeights
    {
        public int Experts => scales.Length;

        public long Hidden => Size;

        public long Intermediate => Size;

        public bool W13Interleaved => false;

        public void ReadW13(int expert, Span<byte> destination) => destination.Fill(0x38);

        public void ReadW2(int expert, Span<byte> destination) => destination.Fill(0x38);

        public void ReadW13Scales(int expert, Span<float> destination)
        {
            destination[0] = (float)scales[expert].Gate;
            destination[1] = (float)scales[expert].Up;
        }

        public void ReadW2Scales(int expert, Span<float> destination) => destination[0] = (float)scales[expert].Down;
    }

    // The weights of another source with w13's rows gate/up interleaved by 8: gate 0-7, up 0-7, gate 8-15, ...
    private sealed class Interleaved(IExpertWeights canonical) : IExpertWeights
    {
        public int Experts => canonical.Experts;

        public long Hidden => canonical.Hidden;

        public long Intermediate => canonical.Intermediate;

        public bool W13Interleaved => true;

        public void ReadW13(int expert, Span<byte> destination)
        {
            var rows = new byte[destination.Length];
            canonical.ReadW13(expert, rows);
            int columns = (int)Hidden, intermediate = (int)Intermediate;
            for (int row = 0; row < 2 * intermediate; row++)
            {
                int source = (row / 16 * 8) + (row % 16 < 8 ? row % 8 : intermediate + (row % 8));
                rows.AsSpan(source * columns, columns).CopyTo(destination[(row * columns)..]);
            }
        }

        public void ReadW2(int expert, Span<byte> destination) => canonical.ReadW2(expert, destination);

        public void ReadW13Scales(int expert, Span<float> destination) => canonical.ReadW13Scales(expert, destination);

        public void ReadW2Scales(int expert, Span<float> destination) => canonical.ReadW2Scales(expert, destination);
    }
}

using System.Globalization;
using NUnit.Framework;

namespace MegaMoe.Tests.Support;

/// <summary>Seeded randomness: every test draws fresh inputs and prints the seed that reproduces them.</summary>
public static class TestRandom
{
    /// <summary>Environment variable that fixes the seed of every test.</summary>
    public const string SeedVariable = "MEGAMOE_TEST_SEED";

    /// <summary>A generator seeded from <see cref="SeedVariable"/>, or at random; the seed is written to the test output.</summary>
    public static Random Create()
    {
        string? fixedSeed = Environment.GetEnvironmentVariable(SeedVariable);
        int seed = fixedSeed is null ? Random.Shared.Next() : int.Parse(fixedSeed, CultureInfo.InvariantCulture);
        TestContext.Out.WriteLine($"seed {seed} (rerun with {SeedVariable}={seed})");
        return new Random(seed);
    }

    /// <summary>A random FP8 E4M3 code that is not NaN.</summary>
    public static byte NextFp8(this Random random)
    {
        while (true)
        {
            byte code = (byte)random.Next(256);
            if ((code & 0x7F) != 0x7F)
            {
                return code;
            }
        }
    }

    /// <summary><paramref name="count"/> random non-NaN FP8 codes.</summary>
    public static byte[] NextFp8Array(this Random random, long count)
    {
        var codes = new byte[count];
        for (long i = 0; i < count; i++)
        {
            codes[i] = random.NextFp8();
        }

        return codes;
    }

    /// <summary>A standard normal sample (Box-Muller).</summary>
    public static float NextNormal(this Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
    }

    /// <summary>A value spread log-uniformly over [<paramref name="low"/>, <paramref name="high"/>].</summary>
    public static float NextLogUniform(this Random random, double low, double high) =>
        (float)Math.Exp(Math.Log(low) + (random.NextDouble() * (Math.Log(high) - Math.Log(low))));

    /// <summary>Block scales: positive, log-uniform over [1e-3, 1e-2] so dequantized values are O(1).</summary>
    public static float[] NextScales(this Random random, long count)
    {
        var scales = new float[count];
        for (long i = 0; i < count; i++)
        {
            scales[i] = random.NextLogUniform(1e-3, 1e-2);
        }

        return scales;
    }

    /// <summary>
    /// Normal values whose magnitude varies per row of <paramref name="columns"/> elements by up to 10^±3, so
    /// quantization scales differ from group to group.
    /// </summary>
    public static float[] NextActivations(this Random random, long rows, long columns)
    {
        var values = new float[rows * columns];
        for (long r = 0; r < rows; r++)
        {
            float magnitude = random.NextLogUniform(1e-3, 1e3);
            for (long c = 0; c < columns; c++)
            {
                values[(r * columns) + c] = random.NextNormal() * magnitude;
            }
        }

        return values;
    }
}

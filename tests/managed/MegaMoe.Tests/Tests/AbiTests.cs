using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FluentAssertions;
using MegaMoe.Interop;
using MegaMoe.Tests.Support;
using NUnit.Framework;

namespace MegaMoe.Tests;

/// <summary>
/// The binding against the header it was written from, both ways: every <c>MEGAMOE_API</c> function is imported with
/// the same name, arity and compatible types, nothing else is imported, and structs, enums and flags agree.
/// </summary>
[TestFixture]
public sealed class AbiTests
{
    private static readonly CHeader Header = CHeader.Load();

    private static readonly Dictionary<string, MethodInfo> Imports = typeof(NativeMethods)
        .GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
        .Where(m => m.GetCustomAttribute<LibraryImportAttribute>() is not null)
        .ToDictionary(m => m.Name);

    private static readonly Dictionary<string, Type> ManagedTypes = new()
    {
        ["megamoe_status_t"] = typeof(MegaMoeStatus),
        ["megamoe_backend_t"] = typeof(Backend),
        ["megamoe_dtype_t"] = typeof(DataType),
        ["megamoe_context_t"] = typeof(ContextHandle),
        ["megamoe_buffer_t"] = typeof(BufferHandle),
        ["megamoe_routed_plan_t"] = typeof(RoutedPlanHandle),
        ["megamoe_moe_layer_t"] = typeof(MoeLayerHandle),
        ["megamoe_tensor_t"] = typeof(MegaMoeTensor),
        ["megamoe_device_info_t"] = typeof(MegaMoeDeviceInfo),
        ["megamoe_moe_config_t"] = typeof(MegaMoeMoeConfig),
        ["megamoe_ep_comm_t"] = typeof(EpCommHandle),
        ["megamoe_ep_dispatcher_t"] = typeof(EpDispatcherHandle),
        ["megamoe_ep_layer_t"] = typeof(EpLayerHandle),
        ["megamoe_ep_config_t"] = typeof(MegaMoeEpConfig),
    };

    private static IEnumerable<CFunction> HeaderFunctions() => Header.Functions;

    private static IEnumerable<string> StructNames() => Header.Structs.Keys;

    [Test]
    public void ParserFindsEveryExportedFunction()
    {
        int exportLines = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "megamoe.h"))
            .Count(line => line.StartsWith("MEGAMOE_API ", StringComparison.Ordinal));

        Header.Functions.Should().HaveCount(exportLines).And.Contain(f => f.Name == "megamoe_moe_layer_forward");
    }

    [TestCaseSource(nameof(HeaderFunctions))]
    public void FunctionIsImportedWithCompatibleSignature(CFunction function)
    {
        Imports.Should().ContainKey(function.Name, "every MEGAMOE_API function has a LibraryImport");
        MethodInfo method = Imports[function.Name];
        LibraryImportAttribute import = method.GetCustomAttribute<LibraryImportAttribute>()!;
        import.LibraryName.Should().Be(NativeMethods.LibraryName);
        import.EntryPoint.Should().Be(function.Name, "entry points are explicit");

        // docs/CSHARP.md: a handle may cross as a raw nint only where SafeHandle.ReleaseHandle calls it (*_destroy),
        // and a string stands for const char* only with UTF-8 marshalling.
        var rules = new Rules(
            Utf8Strings: import.StringMarshalling == StringMarshalling.Utf8,
            RawHandles: function.Name.EndsWith("_destroy", StringComparison.Ordinal));
        Compatible(function.ReturnType, method.ReturnType, rules).Should().BeTrue($"return type {function.ReturnType} ~ {method.ReturnType}");
        ParameterInfo[] parameters = method.GetParameters();
        parameters.Should().HaveCount(function.Parameters.Count);
        for (int i = 0; i < parameters.Length; i++)
        {
            CDeclaration c = function.Parameters[i];
            Compatible(c.Type, parameters[i].ParameterType, rules).Should().BeTrue(
                $"parameter {i} '{c.Type} {c.Name}' ~ '{parameters[i].ParameterType} {parameters[i].Name}'");
        }
    }

    [Test]
    public void NothingIsImportedThatTheHeaderLacks() =>
        Imports.Keys.Should().BeSubsetOf(Header.Functions.Select(f => f.Name));

    [Test]
    public void GuardChecksExactlyTheImportedFunctions() =>
        NativeMethods.ImportedFunctions.Should().BeEquivalentTo(
            Imports.Values.Select(m => m.GetCustomAttribute<LibraryImportAttribute>()!.EntryPoint));

    [TestCaseSource(nameof(HeaderFunctions))]
    public void FunctionIsExportedByTheLoadedLibrary(CFunction function)
    {
        NativeLibraryGuard.EnsureLoaded();
        NativeLibrary.TryGetExport(NativeLibraryLoader.Handle, function.Name, out nint address)
            .Should().BeTrue($"{NativeLibraryLoader.LoadedPath} exports {function.Name}");
        address.Should().NotBe(0);
    }

    [Test]
    public void GuardRejectsALibraryMissingAnImport()
    {
        Action verify = () => NativeLibraryGuard.VerifyExports(
            NativeMethods.ImportedFunctions, name => name != "megamoe_gemm_routed", "/somewhere/libother.so");

        verify.Should().Throw<InvalidOperationException>().WithMessage("*/somewhere/libother.so*megamoe_gemm_routed*");
    }

    [TestCaseSource(nameof(StructNames))]
    public void StructMatchesTheHeaderFieldByField(string name)
    {
        Type managed = ManagedTypes[name];
        IReadOnlyList<CDeclaration> fields = Header.Structs[name];
        FieldInfo[] managedFields = managed.GetFields(BindingFlags.Instance | BindingFlags.Public);
        managedFields.Select(f => f.Name).Should().Equal(fields.Select(f => PascalCase(f.Name)), "same fields in the same order");
        (int managedSize, Dictionary<string, long> managedOffsets) = Layouts[name]();
        managedOffsets.Keys.Should().BeEquivalentTo(managedFields.Select(f => f.Name), "the layout table covers every field");

        long offset = 0, alignment = 1;
        foreach (CDeclaration field in fields)
        {
            (long size, long fieldAlignment) = SizeAndAlignment(field.Type);
            offset = Align(offset, fieldAlignment);
            alignment = Math.Max(alignment, fieldAlignment);
            FieldInfo managedField = managed.GetField(PascalCase(field.Name))!;
            managedOffsets[managedField.Name].Should().Be(offset, $"offset of {name}.{field.Name}");
            Compatible(field.Type, managedField.FieldType, Rules.Struct).Should().BeTrue($"{field.Type} {field.Name} ~ {managedField.FieldType}");
            offset += size;
        }

        long cSize = Align(offset, alignment);
        managedSize.Should().Be((int)cSize);
        NativeMethods.megamoe_struct_size(name).Should().Be(cSize, "the loaded library was compiled with the same layout");
    }

    [Test]
    public void UnknownStructSizeIsMinusOne() => NativeMethods.megamoe_struct_size("megamoe_nothing_t").Should().Be(-1);

    [Test]
    public void EnumsMatchTheHeader()
    {
        Header.Enums["megamoe_status_t"].Should().BeEquivalentTo(
            Enum.GetValues<MegaMoeStatus>().ToDictionary(
                s => s == MegaMoeStatus.Success ? "MEGAMOE_SUCCESS" : $"MEGAMOE_ERROR_{SnakeCase(s.ToString())}", s => (long)s));
        Header.Enums["megamoe_backend_t"].Should().BeEquivalentTo(
            Enum.GetValues<Backend>().ToDictionary(b => $"MEGAMOE_BACKEND_{SnakeCase(b.ToString())}", b => (long)b));
        Header.Enums["megamoe_dtype_t"].Should().BeEquivalentTo(new Dictionary<string, long>
        {
            ["MEGAMOE_DTYPE_FP8_E4M3"] = (long)DataType.Float8E4M3,
            ["MEGAMOE_DTYPE_BF16"] = (long)DataType.BFloat16,
            ["MEGAMOE_DTYPE_FP32"] = (long)DataType.Float32,
            ["MEGAMOE_DTYPE_INT32"] = (long)DataType.Int32,
            ["MEGAMOE_DTYPE_INT64"] = (long)DataType.Int64,
        });
    }

    [Test]
    public void FlagsMatchTheHeader()
    {
        Header.IntegerValue("MEGAMOE_QUANT_DEFAULT").Should().Be((long)QuantizationOptions.None);
        Header.IntegerValue("MEGAMOE_QUANT_UE8M0_SCALES").Should().Be((long)QuantizationOptions.Ue8m0Scales);
        Header.IntegerValue("MEGAMOE_PLAN_DEFAULT").Should().Be((long)RoutedPlanOptions.None);
        Header.IntegerValue("MEGAMOE_PLAN_EXPERT_SPECIALIZATION").Should().Be((long)RoutedPlanOptions.ExpertSpecialization);
        Header.IntegerValue("MEGAMOE_MOE_W13_INTERLEAVED").Should().Be(MegaMoeMoeConfig.W13InterleavedFlag);
        Header.IntegerValue("MEGAMOE_MOE_EXPERT_SPECIALIZATION_UP").Should().Be(MegaMoeMoeConfig.ExpertSpecializationUpFlag);
        Header.IntegerValue("MEGAMOE_MOE_EXPERT_SPECIALIZATION_DOWN").Should().Be(MegaMoeMoeConfig.ExpertSpecializationDownFlag);
        Header.IntegerValue("MEGAMOE_MAX_RANK").Should().Be(MegaMoeTensor.MaxRank);
        Header.IntegerValue("MEGAMOE_EP_RECORD_TIMINGS").Should().Be(MegaMoeEpConfig.RecordTimingsFlag);
        Header.IntegerValue("MEGAMOE_NCCL_UNIQUE_ID_BYTES").Should().Be(NcclUniqueId.Size);
    }

    [Test]
    public unsafe void StatusStringsNameTheConstants()
    {
        foreach ((string constant, long value) in Header.Enums["megamoe_status_t"])
        {
            NativeStatus.Utf8(NativeMethods.megamoe_status_string((MegaMoeStatus)value)).Should().Be(constant);
        }
    }

    [Test]
    public unsafe void VersionsAgree()
    {
        var header = new Version(
            (int)Header.IntegerValue("MEGAMOE_VERSION_MAJOR"), (int)Header.IntegerValue("MEGAMOE_VERSION_MINOR"), (int)Header.IntegerValue("MEGAMOE_VERSION_PATCH"));

        MegaMoeLibrary.Version.Should().Be(header, "the native library was built from this header");
        typeof(MoeContext).Assembly.GetName().Version.Should().Be(new Version(header.Major, header.Minor, header.Build, 0));
        NativeStatus.Utf8(NativeMethods.megamoe_version_string()).Should().Be(header.ToString(3));
        MegaMoeLibrary.BuildInfo.Should().Contain("=");
    }

    // The binding's own layout (what the blittable calls pass), not the marshaller's view of it: sizeof and
    // field addresses of an actual instance.
    private static readonly Dictionary<string, Func<(int Size, Dictionary<string, long> Offsets)>> Layouts = new()
    {
        ["megamoe_tensor_t"] = TensorLayout,
        ["megamoe_device_info_t"] = DeviceInfoLayout,
        ["megamoe_moe_config_t"] = MoeConfigLayout,
        ["megamoe_ep_config_t"] = EpConfigLayout,
    };

    private static unsafe (int, Dictionary<string, long>) TensorLayout()
    {
        MegaMoeTensor v = default;
        byte* b = (byte*)&v;
        return (Unsafe.SizeOf<MegaMoeTensor>(), new()
        {
            [nameof(v.Data)] = (byte*)&v.Data - b,
            [nameof(v.DeviceType)] = (byte*)&v.DeviceType - b,
            [nameof(v.DeviceId)] = (byte*)&v.DeviceId - b,
            [nameof(v.Dtype)] = (byte*)&v.Dtype - b,
            [nameof(v.Rank)] = (byte*)&v.Rank - b,
            [nameof(v.Shape)] = (byte*)&v.Shape - b,
            [nameof(v.Strides)] = (byte*)&v.Strides - b,
        });
    }

    private static unsafe (int, Dictionary<string, long>) DeviceInfoLayout()
    {
        MegaMoeDeviceInfo v = default;
        byte* b = (byte*)&v;
        return (Unsafe.SizeOf<MegaMoeDeviceInfo>(), new()
        {
            [nameof(v.StructSize)] = (byte*)&v.StructSize - b,
            [nameof(v.Backend)] = (byte*)&v.Backend - b,
            [nameof(v.DeviceId)] = (byte*)&v.DeviceId - b,
            [nameof(v.ComputeCapabilityMajor)] = (byte*)&v.ComputeCapabilityMajor - b,
            [nameof(v.ComputeCapabilityMinor)] = (byte*)&v.ComputeCapabilityMinor - b,
            [nameof(v.MultiprocessorCount)] = (byte*)&v.MultiprocessorCount - b,
            [nameof(v.DriverVersion)] = (byte*)&v.DriverVersion - b,
            [nameof(v.RuntimeVersion)] = (byte*)&v.RuntimeVersion - b,
            [nameof(v.TotalMemoryBytes)] = (byte*)&v.TotalMemoryBytes - b,
            [nameof(v.L2CacheBytes)] = (byte*)&v.L2CacheBytes - b,
            [nameof(v.Name)] = (byte*)&v.Name - b,
        });
    }

    private static unsafe (int, Dictionary<string, long>) MoeConfigLayout()
    {
        MegaMoeMoeConfig v = default;
        byte* b = (byte*)&v;
        return (Unsafe.SizeOf<MegaMoeMoeConfig>(), new()
        {
            [nameof(v.StructSize)] = (byte*)&v.StructSize - b,
            [nameof(v.Flags)] = (byte*)&v.Flags - b,
            [nameof(v.NumExperts)] = (byte*)&v.NumExperts - b,
            [nameof(v.TopK)] = (byte*)&v.TopK - b,
            [nameof(v.Hidden)] = (byte*)&v.Hidden - b,
            [nameof(v.Intermediate)] = (byte*)&v.Intermediate - b,
            [nameof(v.MaxTokens)] = (byte*)&v.MaxTokens - b,
            [nameof(v.ActivationAlpha)] = (byte*)&v.ActivationAlpha - b,
            [nameof(v.ActivationBeta)] = (byte*)&v.ActivationBeta - b,
            [nameof(v.ActivationClamp)] = (byte*)&v.ActivationClamp - b,
            [nameof(v.RoutedScalingFactor)] = (byte*)&v.RoutedScalingFactor - b,
            [nameof(v.Progress)] = (byte*)&v.Progress - b,
            [nameof(v.ProgressUserData)] = (byte*)&v.ProgressUserData - b,
        });
    }

    private static unsafe (int, Dictionary<string, long>) EpConfigLayout()
    {
        MegaMoeEpConfig v = default;
        byte* b = (byte*)&v;
        return (Unsafe.SizeOf<MegaMoeEpConfig>(), new()
        {
            [nameof(v.StructSize)] = (byte*)&v.StructSize - b,
            [nameof(v.Flags)] = (byte*)&v.Flags - b,
            [nameof(v.NumExperts)] = (byte*)&v.NumExperts - b,
            [nameof(v.TopK)] = (byte*)&v.TopK - b,
            [nameof(v.Hidden)] = (byte*)&v.Hidden - b,
            [nameof(v.Intermediate)] = (byte*)&v.Intermediate - b,
            [nameof(v.MaxTokensPerRank)] = (byte*)&v.MaxTokensPerRank - b,
            [nameof(v.ExpertBegin)] = (byte*)&v.ExpertBegin - b,
            [nameof(v.NumLocalExperts)] = (byte*)&v.NumLocalExperts - b,
            [nameof(v.ActivationAlpha)] = (byte*)&v.ActivationAlpha - b,
            [nameof(v.ActivationBeta)] = (byte*)&v.ActivationBeta - b,
            [nameof(v.ActivationClamp)] = (byte*)&v.ActivationClamp - b,
            [nameof(v.RoutedScalingFactor)] = (byte*)&v.RoutedScalingFactor - b,
            [nameof(v.Progress)] = (byte*)&v.Progress - b,
            [nameof(v.ProgressUserData)] = (byte*)&v.ProgressUserData - b,
        });
    }

    // C type (const removed) vs .NET type, by the rules of docs/CSHARP.md.
    private static bool Compatible(string c, Type t, Rules rules)
    {
        if (c.EndsWith(']'))
        {
            int open = c.IndexOf('[', StringComparison.Ordinal);
            string element = c[..open], length = c[(open + 1)..^1];
            int expected = int.TryParse(length, out int n) ? n : (int)Header.IntegerValue(length);
            return t.GetCustomAttribute<InlineArrayAttribute>() is { } inline && inline.Length == expected
                && Compatible(element, t.GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)[0].FieldType, rules);
        }

        if (c.EndsWith('*'))
        {
            string pointee = c[..^1];
            // An array of handles crosses as nint*: the binding holds a reference on each SafeHandle for the call.
            if (t.IsPointer && t.GetElementType() == typeof(nint) && ManagedTypes.TryGetValue(pointee, out Type? handle)
                && typeof(SafeHandle).IsAssignableFrom(handle))
            {
                return true;
            }

            return (t.IsPointer || t.IsByRef) ? Compatible(pointee, t.GetElementType()!, rules)
                : pointee == "void" ? t == typeof(nint)
                : pointee == "char" && t == typeof(string) && rules.Utf8Strings;
        }

        return c switch
        {
            "void" => t == typeof(void),
            "char" => t == typeof(byte),
            "int32_t" => t == typeof(int),
            "int64_t" => t == typeof(long),
            "uint32_t" => t == typeof(uint),
            "uint8_t" => t == typeof(byte),
            "float" => t == typeof(float),
            "double" => t == typeof(double),
            "megamoe_progress_fn" => t.IsFunctionPointer || t == typeof(nint),
            _ when ManagedTypes.TryGetValue(c, out Type? managed) =>
                (t == managed && (!managed.IsEnum || Enum.GetUnderlyingType(managed) == typeof(int)))
                || (managed.IsEnum && t == typeof(int))
                || (typeof(SafeHandle).IsAssignableFrom(managed) && t == typeof(nint) && rules.RawHandles),
            _ => false,
        };
    }

    private static (long Size, long Alignment) SizeAndAlignment(string c)
    {
        if (c.EndsWith(']'))
        {
            int open = c.IndexOf('[', StringComparison.Ordinal);
            string length = c[(open + 1)..^1];
            (long size, long alignment) = SizeAndAlignment(c[..open]);
            return (size * (int.TryParse(length, out int n) ? n : Header.IntegerValue(length)), alignment);
        }

        return c switch
        {
            "char" or "uint8_t" => (1, 1),
            "int32_t" or "uint32_t" or "float" => (4, 4),
            "int64_t" => (8, 8),
            _ when c.EndsWith('*') || c == "megamoe_progress_fn" => (IntPtr.Size, IntPtr.Size),
            _ => throw new NotSupportedException($"No layout rule for C type {c}."),
        };
    }

    /// <summary>Where the binding may deviate from the one-to-one mapping.</summary>
    /// <param name="Utf8Strings">A <c>string</c> may stand for <c>const char*</c> (the import marshals UTF-8).</param>
    /// <param name="RawHandles">A handle may cross as <c>nint</c> (only <c>*_destroy</c>).</param>
    private readonly record struct Rules(bool Utf8Strings, bool RawHandles)
    {
        public static Rules Struct => new(Utf8Strings: false, RawHandles: false);
    }

    private static long Align(long value, long alignment) => (value + alignment - 1) / alignment * alignment;

    private static string PascalCase(string snake) =>
        string.Concat(snake.Split('_').Select(part => char.ToUpperInvariant(part[0]) + part[1..]));

    private static string SnakeCase(string pascal) =>
        string.Concat(pascal.Select((ch, i) => i > 0 && char.IsUpper(ch) ? $"_{ch}" : $"{char.ToUpperInvariant(ch)}"));
}

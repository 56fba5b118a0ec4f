namespace MegaMoe.Tests.Support;

/// <summary>Allocates tensors on one context and disposes them all at the end of a test step.</summary>
public sealed class DeviceScope : IDisposable
{
    private readonly List<DeviceTensor> _tensors = [];

    /// <summary>Creates a scope on <paramref name="context"/>.</summary>
    public DeviceScope(MoeContext context) => Context = context;

    /// <summary>The context tensors are allocated on.</summary>
    public MoeContext Context { get; }

    /// <summary>An uninitialized tensor.</summary>
    public DeviceTensor Allocate(DataType dataType, params long[] shape)
    {
        var tensor = DeviceTensor.Allocate(Context, dataType, shape);
        _tensors.Add(tensor);
        return tensor;
    }

    /// <summary>A tensor whose bytes are all <paramref name="value"/>.</summary>
    public DeviceTensor Filled(DataType dataType, byte value, params long[] shape)
    {
        DeviceTensor tensor = Allocate(dataType, shape);
        tensor.Fill(value);
        return tensor;
    }

    /// <summary>A tensor holding <paramref name="data"/>.</summary>
    public DeviceTensor Upload<T>(DataType dataType, T[] data, params long[] shape)
        where T : unmanaged
    {
        DeviceTensor tensor = Allocate(dataType, shape);
        tensor.CopyFrom<T>(data);
        return tensor;
    }

    /// <summary>Disposes every tensor of the scope.</summary>
    public void Dispose()
    {
        foreach (DeviceTensor tensor in _tensors)
        {
            tensor.Dispose();
        }
    }
}

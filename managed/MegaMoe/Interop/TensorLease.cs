using System.Runtime.InteropServices;

namespace MegaMoe.Interop;

/// <summary>
/// Keeps the buffers behind the descriptors of one native call alive and undisposed until the call returns.
/// Descriptors carry raw data pointers, which the marshaller cannot protect the way it protects a
/// <see cref="SafeHandle"/> argument: without this, a concurrent <see cref="DeviceTensor.Dispose"/> or the
/// finalizer of an otherwise unreachable tensor could free the memory mid-call.
/// </summary>
internal readonly struct TensorLease : IDisposable
{
    private readonly SafeHandle?[] _handles;

    /// <summary>Adds a reference to each non-null tensor's buffer.</summary>
    /// <exception cref="ObjectDisposedException">A tensor was disposed.</exception>
    public TensorLease(params ReadOnlySpan<DeviceTensor?> tensors)
    {
        _handles = new SafeHandle?[tensors.Length];
        try
        {
            for (int i = 0; i < tensors.Length; i++)
            {
                if (tensors[i] is { } tensor)
                {
                    BufferHandle buffer = tensor.Buffer;
                    bool added = false;
                    buffer.DangerousAddRef(ref added);
                    if (added)
                    {
                        _handles[i] = buffer;
                    }
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Releases the references taken by the constructor.</summary>
    public void Dispose()
    {
        foreach (SafeHandle? handle in _handles ?? [])
        {
            handle?.DangerousRelease();
        }
    }
}

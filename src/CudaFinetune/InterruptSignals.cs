using System.Runtime.InteropServices;

namespace CudaFinetune.Cli;

/// <summary>
/// Turns the first SIGINT (Ctrl-C) or SIGTERM into a cancellation request — training stops after
/// the current optimizer step and writes a checkpoint to resume from — and lets a second one end
/// the process at once (no committed checkpoint is damaged: they appear only by atomic rename).
/// </summary>
internal sealed class InterruptSignals : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly TextWriter _error;
    private readonly PosixSignalRegistration[] _registrations;

    public InterruptSignals(TextWriter error)
    {
        _error = error;
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal), PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal)];
    }

    public CancellationToken Token => _source.Token;

    private void OnSignal(PosixSignalContext context)
    {
        if (_source.IsCancellationRequested)
        {
            return; // second signal: let the default action end the process
        }
        context.Cancel = true;
        _error.WriteLine();
        _error.WriteLine($"{context.Signal}: stopping after the current step and writing a checkpoint (send it again to abort at once)");
        _source.Cancel();
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
        _source.Dispose();
    }
}

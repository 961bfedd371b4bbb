"""Make the bundled example: a Bach chorale performed with expressive timing, each voice on its
own instrument, rendered with MuseScore_General (not the tool's default soundfont).

    python examples/make_example.py        # needs the bench extra (music21) and MuseScore_General

Writes, beside this script:
  mix.flac             the mixture (mono, 44.1 kHz, 16 bit)
  score.mid            the plain score at a constant tempo: all four parts, NOT aligned
  truth/violin.flac    the violin part alone, exactly as it is in the mixture
  truth/performed.mid  the performance: every note where it really sounds (the true alignment)

Fixed seeds: rerunning it gives the same files.
"""
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.perform import Style, load_score, perform, render_parts  # noqa: E402

CORPUS = "bach/bwv66.6"
UNTIL = 29.0                                     # quarter notes: up to the fermata of bar 7
PROGRAMS = [40, 73, 71, 42]                      # violin, flute, clarinet, cello
NAMES = ["violin", "flute", "clarinet", "cello"]
STYLE = Style(bpm=100, seed=7, lead_in=0.5, fermata_hold=(1.4, 1.8))
GAINS_DB = [1.0, 0.0, 0.0, 0.0]                  # the melody a little forward
SR = 44100


def main():
    import soundfile as sf

    parts = load_score(CORPUS, PROGRAMS, NAMES, max_quarters=UNTIL)
    perf, plain = perform(parts, STYLE)
    ys, mix = render_parts(perf, sr=SR, gains_db=GAINS_DB, seed=STYLE.seed, tail=1.5)
    tmp = HERE / ".make_example.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "truth").mkdir(parents=True)
    sf.write(str(tmp / "mix.flac"), mix, SR, subtype="PCM_16", compression_level=1.0)
    sf.write(str(tmp / "truth" / "violin.flac"), ys[0], SR, subtype="PCM_16", compression_level=1.0)
    plain.write(str(tmp / "score.mid"))
    perf.write(str(tmp / "truth" / "performed.mid"))
    (HERE / "truth").mkdir(exist_ok=True)
    for rel in ("mix.flac", "score.mid", "truth/violin.flac", "truth/performed.mid"):
        (tmp / rel).replace(HERE / rel)
    shutil.rmtree(tmp, ignore_errors=True)
    size = sum((HERE / r).stat().st_size for r in ("mix.flac", "score.mid", "truth/violin.flac", "truth/performed.mid"))
    print(f"wrote {HERE}: {len(mix) / SR:.1f} s, {size / 1e6:.2f} MB in all")


if __name__ == "__main__":
    main()

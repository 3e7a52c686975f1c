// The playground's editor: CodeMirror 6 with Python, themed by the page's CSS variables.
// Built by `npm run build` into src/python_mcp_server/playground/static/editor.js.
import { EditorState } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, placeholder,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching, indentOnInput, syntaxHighlighting, HighlightStyle,
} from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { tags as t } from "@lezer/highlight";

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.operatorKeyword, t.definitionKeyword, t.moduleKeyword],
    color: "var(--hl-keyword)" },
  { tag: [t.string, t.special(t.string)], color: "var(--hl-string)" },
  { tag: [t.number, t.bool, t.null], color: "var(--hl-number)" },
  { tag: [t.comment, t.lineComment], color: "var(--hl-comment)", fontStyle: "italic" },
  { tag: [t.function(t.variableName), t.function(t.propertyName)], color: "var(--hl-function)" },
  { tag: [t.definition(t.variableName), t.className, t.definition(t.className)],
    color: "var(--hl-definition)" },
  { tag: [t.self, t.special(t.variableName)], color: "var(--hl-keyword)" },
  { tag: t.meta, color: "var(--hl-comment)" },
  { tag: t.invalid, color: "var(--danger)" },
]);

const theme = EditorView.theme({
  "&": { color: "var(--fg)", backgroundColor: "var(--editor-bg)", height: "100%" },
  "&.cm-focused": { outline: "none" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.5" },
  ".cm-content": { caretColor: "var(--accent)", padding: "8px 0" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--accent)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground":
    { backgroundColor: "var(--selection)" },
  ".cm-gutters": { backgroundColor: "var(--editor-bg)", color: "var(--muted)", border: "none" },
  ".cm-activeLine": { backgroundColor: "var(--active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--active-line)", color: "var(--fg)" },
  "&.cm-focused .cm-matchingBracket": { backgroundColor: "var(--selection)", outline: "none" },
  ".cm-placeholder": { color: "var(--muted)" },
});

/**
 * An editor in `parent`. `run()` is called on Shift+Enter (and Ctrl/Cmd+Enter).
 * `attributes` go on the editable element (e.g. a test id).
 * Returns {view, getCode(), setCode(text), focus()}.
 */
export function createEditor(parent, { doc = "", run = () => {}, label = "Python code", attributes = {}, nonce } = {}) {
  const runKey = () => { run(); return true; };
  const extensions = [
    lineNumbers(), highlightActiveLineGutter(), history(), drawSelection(), indentOnInput(),
    EditorView.lineWrapping,
    bracketMatching(), highlightActiveLine(), python(), syntaxHighlighting(highlight), theme,
    placeholder("# Python code. Shift+Enter runs it."),
    EditorState.tabSize.of(4),
    keymap.of([
      { key: "Shift-Enter", run: runKey },
      { key: "Mod-Enter", run: runKey },
      indentWithTab, ...defaultKeymap, ...historyKeymap,
    ]),
    EditorView.contentAttributes.of({ "aria-label": label, ...attributes }),
  ];
  if (nonce) extensions.push(EditorView.cspNonce.of(nonce));
  const view = new EditorView({ state: EditorState.create({ doc, extensions }), parent });
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    focus: () => view.focus(),
  };
}

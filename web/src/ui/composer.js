// Writing: text (Enter sends, Shift+Enter breaks the line), a reply being
// quoted, an edit, a file picked or dropped with its preview, caption and
// upload progress. Typing signals go out while you type.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';

import { bytesLabel } from '../util.js';

export function Composer({ client, chat, replyTo, clearReply, editing, clearEditing, beforeSend }) {
  const [text, setText] = useState('');
  const [file, setFile] = useState(null);
  const [progress, setProgress] = useState(null);
  const input = useRef(null);
  const picker = useRef(null);

  useEffect(() => {
    if (editing) setText(editing.text);
    input.current?.focus();
  }, [editing, replyTo]);
  useEffect(() => {
    const pane = input.current?.closest('.conversation');
    const onDrop = (event) => {
      event.preventDefault();
      const dropped = event.dataTransfer?.files?.[0];
      if (dropped) setFile(dropped);
    };
    pane?.addEventListener('drop', onDrop);
    return () => pane?.removeEventListener('drop', onDrop);
  }, []);

  const submit = async (event) => {
    event?.preventDefault();
    const body = text.trim();
    client.typing(chat, 'paused');
    try {
      if (file) {
        setProgress(0);
        await client.sendFile(chat, file, body, setProgress);
        setFile(null);
      } else if (editing) {
        if (body && body !== editing.text) await client.edit(chat, editing, body);
        clearEditing();
      } else if (body) {
        beforeSend();
        client.sendText(chat, body, replyTo?.id);
        clearReply();
      }
      setText('');
    } catch (error) {
      client.notice(error.message);
    } finally {
      setProgress(null);
    }
  };
  const onKeyDown = (event) => {
    if (event.key === 'Enter' && !event.shiftKey) submit(event);
    if (event.key === 'Escape') {
      clearReply();
      clearEditing();
      setFile(null);
    }
  };
  const onInput = (event) => {
    setText(event.target.value);
    client.typing(chat, event.target.value ? 'typing' : 'paused');
  };

  return html`<footer class="composer">
    ${replyTo && html`<div class="replying" data-testid="replying">
      <blockquote class="quote"><strong>${client.nameOf(replyTo.from)}</strong> ${replyTo.text || '📎 Attachment'}</blockquote>
      <button aria-label="Cancel reply" onClick=${clearReply}>✕</button></div>`}
    ${editing && html`<div class="replying"><span>Editing message</span><button aria-label="Cancel edit" onClick=${() => (clearEditing(), setText(''))}>✕</button></div>`}
    ${file && html`<${FilePreview} file=${file} progress=${progress} cancel=${() => setFile(null)} />`}
    <form onSubmit=${submit}>
      <button type="button" class="attach" aria-label="Attach a file" data-testid="attach" onClick=${() => picker.current.click()}>📎</button>
      <input type="file" ref=${picker} hidden data-testid="file-input" onChange=${(e) => e.target.files[0] && setFile(e.target.files[0])} />
      <textarea ref=${input} rows="1" placeholder=${file ? 'Add a caption' : 'Type a message'} aria-label="Message"
        data-testid="composer" value=${text} onInput=${onInput} onKeyDown=${onKeyDown} onBlur=${() => client.typing(chat, 'paused')}></textarea>
      <button type="submit" class="send" aria-label="Send" data-testid="send" disabled=${progress !== null}>➤</button>
    </form>
  </footer>`;
}

function FilePreview({ file, progress, cancel }) {
  const [url, setUrl] = useState(null);
  useEffect(() => {
    if (!file.type.startsWith('image/')) return undefined;
    const made = URL.createObjectURL(file);
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [file]);
  return html`<div class="file-preview" data-testid="file-preview">
    ${url ? html`<img src=${url} alt="preview" />` : html`<span class="file-icon">📄</span>`}
    <span>${file.name} · ${bytesLabel(file.size)}</span>
    ${progress !== null
      ? html`<progress max="1" value=${progress} data-testid="upload-progress" aria-label="Uploading"></progress>`
      : html`<button aria-label="Remove the file" onClick=${cancel}>✕</button>`}
  </div>`;
}
